"""cellbox's embedded local sandbox server: the Containers API under /v1, with real, isolated, stateful sandboxes.

Run it with `cellbox serve` (or `python -m cellbox.local`); in tests, `cellbox.local.testing.running_server`.

Modules, one concept each::

    app.py         the route table and handlers
    params.py      reading requests: JSON bodies, list parameters, ids from the URL
    records.py     records shaped like the cloud's
    options.py     the server's options, declared once (flags, wiring, tests)
    ids.py         the ids the server issues, and the check that a string is one
    errors.py      errors in the OpenAI shape (and OCI's)
    middleware.py  bearer-token auth, injected latency and faults, OCI's error shape and required project
    listing.py     file listings that lag behind the files (--listing-lag-ms)
    uploads.py     streaming multipart parsing into a temp file
    store.py       SQLite metadata and file bytes in the data dir (atomic renames)
    disk.py        the disk quota, kept at all times (by a filesystem per container, or measured), and a reserve
    diskimages.py  each container's /mnt/data as a filesystem of its own: a loop-mounted ext4 image
    safepath.py    paths under /mnt/data that cannot escape it (no symlink following); bounded scans, deep removals
    launcher.py    starts kernels in bubblewrap jails under a container's Limits; the isolation check
    kernel.py      one kernel per container: the server's side of it (runs, interrupts, output, caps)
    jail_kernel.py the kernel itself, run in the jail: an IPython shell taking code over a socket pair
    pool.py        warm kernels for fast creates
    containers.py  live containers: kernels, locks, expiry
    responses.py   POST /v1/responses requests (every documented field), read and checked
    response_items.py  the records of a Response: calls, the message and its citations, usage, what include shows
    model.py       the `cellbox-local` model: its calls, tool_choice and max_tool_calls, its --model-quirks
    stored.py      responses being made and kept: GET/DELETE/cancel, background runs, bounded storage
    server.py      wiring, uvicorn, the endpoint file; cli.py: `cellbox serve`

What a client can rely on — every endpoint's behaviour, the profiles that imitate the clouds, the deviations — is
in docs/LOCAL_SERVER.md.
"""
