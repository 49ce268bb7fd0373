"""Many containers at once: `Pool` splits work over sandboxes and joins what comes back."""
