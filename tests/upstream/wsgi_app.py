"""A WSGI application for tests/proxy.rs, served by wsgiref (`python3 wsgi_app.py`, prints
"port N") or by gunicorn (`python3 -m gunicorn wsgi_app:app`)."""


def app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    line = "%s %s %s xff=%s host=%s len=%d\n" % (
        environ["REQUEST_METHOD"],
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        environ.get("HTTP_X_FORWARDED_FOR"),
        environ.get("HTTP_HOST"),
        len(body),
    )
    out = line.encode() + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


if __name__ == "__main__":
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    srv = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    print("port %d" % srv.server_port, flush=True)
    srv.serve_forever()
