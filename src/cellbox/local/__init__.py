"""cellbox's embedded local sandbox server: the Containers API under /v1, with real, isolated, stateful sandboxes.

Run it with `cellbox serve` (or `python -m cellbox.local`); in tests, `cellbox.local.testing.running_server`.

Rooms, each importing only those below it (tests/test_layers.py)::

    server.py   wiring: the store, the jail, the app, uvicorn, the endpoint file; cli.py: `cellbox serve`
    http/       the Starlette app: the route table and handlers, reading requests, objects shaped like the cloud's,
                uploads and downloads, the server's own middleware (endpoint proof, request ids, bearer-token auth)
    responses/  POST /v1/responses (create: every documented field, read and checked) and the `cellbox-local`
                model (model, items), responses being made and kept (stored)
    jail/       running code in isolation: kernels in bubblewrap jails (launcher, seccomp, cgroups, kernel,
                jail_kernel), the warm kernels (warm), live containers: kernels, locks, expiry (containers)
    store/      durable state: SQLite metadata and file bytes in the data dir (Store), the file rows kept in
                line with /mnt/data (filesync), the ids the server issues, and each container's /mnt/data on the
                host: safe paths, disk images, the disk quota, watching for changes
    errors.py   errors in the OpenAI shape, raised from every room above the store
    options.py  the server's options, declared once (flags, wiring, tests)

    emulation/  what makes the server behave like a real cloud for tests, fenced off from the real server:
                profiles, OCI's gateway manners, model quirks, listing lag, injected latency and faults

What a client can rely on — every endpoint's behaviour, the profiles that imitate the clouds, the deviations — is
in docs/LOCAL_SERVER.md.
"""
