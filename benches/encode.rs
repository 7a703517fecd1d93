//! Encoding one event: the `event:`/`data:` lines a publisher's thread
//! builds (`encode_body`), and the whole frame with its `id:` line, for a
//! small message, a 4 KiB one and a 64-line one.
//!
//! `cargo bench --bench encode`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_hub::{Event, EventId};

fn encoding(c: &mut Criterion) {
    let multi_line = (0..64)
        .map(|n| format!("line {n} of a multi-line message"))
        .collect::<Vec<_>>()
        .join("\n");
    let events = [
        ("small", Event::new("hello, world")),
        ("4KiB", Event::new("x".repeat(4096))),
        (
            "64-lines",
            Event::new(multi_line)
                .with_name("update")
                .expect("a valid name"),
        ),
    ];
    let id: EventId = "1700000000000-0".parse().expect("a valid id");

    let mut group = c.benchmark_group("encode");
    for (name, event) in &events {
        group.throughput(Throughput::Bytes(event.data().len() as u64));
        group.bench_function(format!("body/{name}"), |b| {
            b.iter(|| black_box(event).encode_body())
        });
        group.bench_function(format!("frame/{name}"), |b| {
            b.iter(|| black_box(event).frame(Some(id)))
        });
    }
    group.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = short();
    targets = encoding
}
criterion_main!(benches);
