"""What every part of cellbox shares, client and server alike; imports nothing of cellbox."""
