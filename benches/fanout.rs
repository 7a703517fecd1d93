//! The hub's fan-out: one publish queued for every subscriber, through the
//! public API (`HubHandle::publish` into `HubHandle::subscribe`
//! subscriptions), with 1,000 and 10,000 subscribers.
//!
//! Each timed sample publishes a batch of messages and waits for each reply,
//! which the hub sends after the frame is in every queue; draining the
//! queues happens outside the timing. So a figure is the hub's cost per
//! message (ID, history, one shared frame, a queue push per subscriber)
//! plus one round trip over the hub's command channel, and the throughput
//! line reads as queued deliveries per second.
//!
//! The server caps subscribers at what the system's thread and memory-map
//! limits allow for real streams, and in-process subscriptions count too;
//! on a machine whose cap is below 10,000 the larger case runs with as
//! many as the cap allows and says so on stderr.
//!
//! `cargo bench --bench fanout`

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_hub::{Config, Error, Event, Server, Subscription};

/// Messages per timed batch; the queues hold at least this many.
const BATCH: u64 = 32;

fn fan_out(c: &mut Criterion) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        max_clients: 20_000,
        queue: 4 * BATCH as usize,
        heartbeat: None,
        ..Config::default()
    };
    let server = Server::bind(config).expect("the server binds");
    let hub = server.hub();
    let stopper = server.stopper();
    let running = thread::spawn(move || server.run());

    let event = Event::new("x".repeat(256));
    let mut group = c.benchmark_group("hub_fanout");
    for wanted in [1_000usize, 10_000] {
        let mut subscriptions: Vec<Subscription> = Vec::with_capacity(wanted);
        while subscriptions.len() < wanted {
            match hub.subscribe(&[], None) {
                Ok(subscription) => subscriptions.push(subscription),
                Err(Error::HubFull) => break,
                Err(e) => panic!("cannot subscribe: {e}"),
            }
        }
        let n = subscriptions.len();
        if n < wanted {
            eprintln!(
                "hub_fanout: the hub took {n} of {wanted} subscribers (its --max-clients cap on this machine)"
            );
        }
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
                    for subscription in &subscriptions {
                        assert_eq!(subscription.frames().try_iter().count(), batch as usize);
                    }
                    left -= batch;
                }
                timed
            })
        });
        drop(subscriptions);
    }
    group.finish();

    stopper.stop();
    running
        .join()
        .expect("the server thread")
        .expect("the server stops cleanly");
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
