//! Micro-benchmarks of the sans-IO hot path: finding and parsing request heads, and writing a
//! response head into a reused buffer. Run with `make bench-micro`; load tests are `make
//! bench-load`. Touches only the public `tern::http` API, never sockets or files.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tern::conn::Limits;
use tern::http::date::DateCache;
use tern::http::request::{find_head_end, parse};
use tern::http::response::{self, HeadCtx, Persist};
use tern::http::Version;

/// A typical desktop browser navigation (Chrome), about 500 bytes.
const BROWSER: &[u8] = b"GET /docs/guide/index.html?lang=en HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Referer: https://www.example.com/docs/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
If-None-Match: \"66a1f3c2-1a2b\"\r\n\
If-Modified-Since: Wed, 24 Jul 2024 10:15:30 GMT\r\n\r\n";

/// What `wrk` sends for `wrk http://127.0.0.1:8080/1k.bin`.
const WRK: &[u8] = b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// Pipelining depth of the batch benchmark (as in `make bench-load`'s pipeline scenario).
const DEPTH: usize = 16;

/// Finds the end of the head at the front of `buf` and parses it with the server's default
/// limit on a field, as the connection does for each request; returns the head's length.
fn find_and_parse(buf: &[u8], max_field: usize) -> usize {
    let mut scanned = 0;
    let len = find_head_end(buf, &mut scanned).expect("complete head");
    let req = parse(&buf[..len], max_field).expect("valid head");
    black_box(&req);
    len
}

fn parsing(c: &mut Criterion) {
    assert!((450..=600).contains(&BROWSER.len()), "{}", BROWSER.len());
    let max_field = Limits::default().max_field;
    let mut g = c.benchmark_group("parse");
    for (name, head) in [("browser_500b", BROWSER), ("wrk", WRK)] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| find_and_parse(black_box(head), max_field))
        });
    }

    let batch: Vec<u8> = WRK.repeat(DEPTH);
    g.throughput(Throughput::Elements(DEPTH as u64));
    g.bench_function("wrk_pipelined_16", |b| {
        b.iter(|| {
            // One read holding 16 requests: each is found and parsed in turn.
            let buf = black_box(&batch[..]);
            let mut start = 0;
            let mut n = 0;
            while start < buf.len() {
                start += find_and_parse(&buf[start..], max_field);
                n += 1;
            }
            assert_eq!(n, DEPTH);
        })
    });
    g.finish();
}

fn response_head(c: &mut Criterion) {
    let dates = DateCache::new(1_721_816_130);
    // The Date and Server lines are formatted once per second, as the handler does.
    let mut common = Vec::new();
    HeadCtx::common(&mut common, dates.text(), Some(b"tern"));
    let ctx = HeadCtx { common: &common };
    let persist = Persist {
        keep_alive: true,
        version: Version::Http11,
    };
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Elements(1));
    // One buffer for the whole run, cleared per response, as the connection reuses its own.
    let mut buf = Vec::with_capacity(512);
    g.bench_function("head_200_file", |b| {
        b.iter(|| {
            buf.clear();
            response::start(&mut buf, 200, ctx, persist);
            response::header(&mut buf, b"Content-Type", b"application/octet-stream");
            response::header(&mut buf, b"Last-Modified", dates.text());
            response::header(&mut buf, b"ETag", b"\"66a1f3c2-400\"");
            response::header(&mut buf, b"Accept-Ranges", b"bytes");
            response::content_length(&mut buf, black_box(1024));
            response::end(&mut buf);
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parsing, response_head);
criterion_main!(benches);
