"""The HTTP API: the Starlette app, its route table and handlers, and the server's own middleware.

app          the route table, the container and response handlers, the middleware stack (build_app)
appstate     what a handler finds on the application
params       reading requests: JSON bodies, list parameters, ids from the URL, the container-create body
objects      the JSON shapes of containers, files and lists, as the cloud answers them
files_api    container files and the Files API: uploads, listings, content
uploads      streaming multipart parsing into a temp file; download: file bytes out, ranges
middleware   the endpoint proof, request ids, bearer-token auth, a handler's unexpected exception as a 500
"""
