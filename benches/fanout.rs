//! The hub's fan-out: one publish queued for every subscriber, through the
//! public API (`Hub::publish` into `Hub::subscribe` subscriptions), with
//! 1,000 and 10,000 subscribers. No socket is involved.
//!
//! Each timed sample publishes a batch of messages and waits for each reply,
//! which the hub sends after the frame is in every queue; draining the
//! queues happens outside the timing. So a figure is the hub's cost per
//! message (ID, history, one shared frame, a queue push per subscriber)
//! plus one round trip over the hub's command channel, and the throughput
//! line reads as queued deliveries per second.
//!
//! `cargo bench --bench fanout`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_hub::{Event, Hub, HubConfig, Subscription};

/// Messages per timed batch; the queues hold at least this many.
const BATCH: u64 = 32;

fn fan_out(c: &mut Criterion) {
    let hub = Hub::start(HubConfig {
        max_clients: 20_000,
        queue: 4 * BATCH as usize,
        heartbeat: None,
        ..HubConfig::default()
    })
    .expect("the hub starts");

    let event = Event::new("x".repeat(256));
    let mut group = c.benchmark_group("hub_fanout");
    for wanted in [1_000usize, 10_000] {
        let mut subscriptions: Vec<Subscription> = (0..wanted)
            .map(|_| hub.subscribe(&[], None).expect("room for every subscriber"))
            .collect();
        let n = subscriptions.len();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(BATCH);
                    let start = Instant::now();
                    for _ in 0..batch {
                        black_box(hub.publish(&event, None).expect("the hub runs"));
                    }
                    timed += start.elapsed();
                    for subscription in &mut subscriptions {
                        let mut events = 0;
                        while let Some(frame) = subscription.try_recv() {
                            events += u64::from(frame.events());
                        }
                        assert_eq!(events, batch);
                    }
                    left -= batch;
                }
                timed
            })
        });
        drop(subscriptions);
    }
    group.finish();
    hub.stop();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = short();
    targets = fan_out
}
criterion_main!(benches);
