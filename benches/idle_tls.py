# Idle HTTPS keep-alive connections (README "HTTPS" / Performance): opens N TLS 1.3
# connections to 127.0.0.1:PORT, one GET /1k.bin on each, holds them idle and prints the
# growth of process PID's RSS per connection. Usage: python3 benches/idle_tls.py PORT PID N
# (the serving process needs a keep-alive timeout longer than the run and room for N
# descriptors; only 127.0.0.1 is contacted).
import socket, ssl, sys, time, resource
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, n + 1000))
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
def one():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
    s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or len(got) < 1024: got += s.recv(65536)
    return s
w = one(); w.close(); time.sleep(0.5)
before = rss(); conns = []; t0 = time.time()
for i in range(n): conns.append(one())
time.sleep(1.0)
after = rss()
alive = 0
for s in conns[:50]:
    s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    if s.recv(65536): alive += 1
print(f"conns={n} rss_before_kb={before} rss_after_kb={after} per_conn_bytes={(after-before)*1024//n} open_s={time.time()-t0:.1f} alive_of_50={alive}")
