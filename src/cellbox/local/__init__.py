"""cellbox's embedded local sandbox server: the Containers API under /v1, with real, isolated, stateful sandboxes.

Run it with `cellbox serve` (or `python -m cellbox.local`); in tests, `cellbox.local.testing.running_server`.

Modules, one concept each::

    app.py         the route table and handlers
    params.py      reading requests: JSON bodies, list parameters, ids from the URL
    records.py     records shaped like the cloud's
    options.py     the server's options, declared once (flags, wiring, tests)
    ids.py         the ids the server issues, and the check that a string is one
    errors.py      errors in the OpenAI shape
    middleware.py  bearer-token auth, injected latency
    uploads.py     streaming multipart parsing into a temp file
    store.py       SQLite metadata and file bytes in the data dir (atomic renames)
    safepath.py    paths under /mnt/data that cannot escape it (no symlink following); bounded scans, deep removals
    launcher.py    starts kernels in bubblewrap jails under a container's Limits; the isolation check
    kernel.py      one ipykernel per container over jupyter_client (ipc transport)
    pool.py        warm kernels for fast creates
    containers.py  live containers: kernels, locks, expiry
    responses.py   the `cellbox-local` model behind POST /v1/responses
    server.py      wiring, uvicorn, the endpoint file; cli.py: `cellbox serve`

Behaviour a client can rely on (where the cloud's is unknown, this is what its users would expect):

- For tests and benchmarks: `--latency-ms N` delays every response; `--error-rate R` answers that share of
  authenticated requests with a retryable 503 (code `injected_fault`, `Retry-After: 0`) before they do anything.
- Every response carries `x-request-id` (`req_...`), which the SDK attaches to its errors.
- Auth: every request needs `Authorization: Bearer <token>`; otherwise 401 with code `invalid_api_key` (wrong
  token) or null (none given). The endpoint file `{"base_url", "token", "pid"}` (mode 0600) exists while the
  server runs.
- Ids sort by creation time: `cntr_` + 48 hex, `cfile_` + 32 hex, `file-` + 22 characters. Lists are newest
  first by default; `after` works even for an id deleted since. A path id of any other shape is a 404 before
  anything touches the disk.
- Containers: `status` is `running` or `expired`; `memory_limit` defaults to `1g`; `expires_after` defaults to
  20 minutes after `last_active_at` (1 to 1440 minutes accepted); every use of a container (any file
  operation, a run) refreshes `last_active_at`; looking at it (retrieve, list) does not, so a panel that polls
  does not keep containers alive. An expired container is still listed and retrievable
  (status `expired`), its files and kernel are gone, and any other use answers 400 "Container is expired."
  (code `container_expired`); deleting it works. `network_policy` is always `{"type": "disabled"}` (an
  allowlist is refused with 400), `skills` are refused with 400.
- Container files: multipart `file` upload (the part's filename is the path under /mnt/data; `sub/x.csv` lands
  at `/mnt/data/sub/x.csv`; `..`, absolute paths other than `/mnt/data/...`, NUL or control characters, and
  names over 255 bytes a component or 1024 in all are refused with 400, param `file`), or JSON/multipart
  `file_id` (copied, named after the file's last component). A file record is an immutable version: writing a
  path anew (upload, or code changing it) gives it a new id; unchanged files keep theirs. After each run the
  folder is scanned (off the event loop; folders deeper than 64 levels are not entered, paths over 1024 bytes
  are not listed, and a scan stops after 200,000 entries): new or changed files appear with source
  `assistant`, vanished ones disappear. Only regular files are listed or read: symlinks are never followed, and
  a file swapped for a FIFO or a device after the scan answers 404 rather than being opened. Content is
  `application/octet-stream`, streamed, with Content-Length;
  a single `Range: bytes=a-b` answers 206 (416 when unsatisfiable); HEAD reads nothing.
  Uploads over the limit (512 MiB by default) answer 413 code `file_too_large`.
- Files API: `POST /v1/files` (multipart `file` and a required `purpose`), list (limit up to 10000, `purpose`
  filter), retrieve, delete (`{"id", "object": "file", "deleted": true}`), content.
- Responses: `model` is required (any name is accepted and echoed back); the request needs a
  `code_interpreter` tool whose `container` is an id or `{"type": "auto", "file_ids", "memory_limit"}`.
  With `stream: true` the answer is server-sent events (response.created ... code_interpreter_call.interpreting
  ... output_text.delta ... response.completed) that the SDK's `responses.stream()` assembles. The code is
  the first fenced python block of the input (the last user message when the input is a list), else the
  whole text. Output: a `code_interpreter_call` (outputs only with `include:
  ["code_interpreter_call.outputs"]`: one `logs` item with stdout, stderr, tracebacks and the last value, then
  `image` items as data URLs) and an assistant message with the logs and a `container_file_citation` per
  new or changed file. Call status: `completed` (also when the code raised: the traceback is in the logs),
  `incomplete` (interrupted after the server's --exec-timeout), `failed` (the kernel died, e.g. out of
  memory; it was restarted: variables lost, files kept). A client that disconnects interrupts its code.
"""
