//! The generic simulator on a toy system: what each fault does to a stream of numbered messages.
//!
//! The toy is two actors. The pinger (a producer) sends the numbers `0..N` to the receiver, one
//! every [`INTERVAL_MS`] on a timer, recording `Send` before each and `Ack` when the receiver
//! confirms it. The receiver (a consumer, so the nemesis may crash and pause it) records a
//! `Deliver` for each number, then acks it. It keeps the numbers it received on a toy disk: they
//! are written to the page cache and fsynced every `flush_every` numbers, and it counts its own
//! starts in the fsynced part. At each start it records a `Commit` whose position is how many
//! numbers it found on its disk, so the history shows what survived a crash or a power loss.
//!
//! The receiver's consumer session is `(starts, resets)`: `starts` comes from its disk,
//! `resets` (connection resets it noticed) lives only in memory.
//!
//! Each test builds an explicit [`Schedule`] and asserts exact facts about the history.

use mqcheck_brokers::{
    AppLog, Config, ConfigError, Durable, Key, Node, Role, Scenario, System, Workload,
};
use mqcheck_invariants::{check, History, Invariant, Kind, MsgId, Op, OrderingPromise};
use mqcheck_sim::world::RECONNECT;
use mqcheck_sim::{
    cast, evaluate, run, schedule_for, shrink, sweep, FaultOp, FaultSet, Run, Schedule,
    ScheduledFault, Split, Target,
};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The toy system.

const PINGER: usize = 0;
const RECEIVER: usize = 1;
/// The pinger sends one number every this many ms.
const INTERVAL_MS: u64 = 10;
/// A node comes up 1 ms after it is (re)started: binding its endpoint costs madsim's minimum sleep.
const BOOT_MS: u64 = 1;
/// From the sender's `send` to the receiver's handler: madsim's link latency (1..10 ms) plus 1 ms
/// on each side — madsim's `rand_delay` of a few µs before every send and after every receive is
/// rounded up to its minimum sleep of 1 ms.
const MIN_LATENCY_MS: u64 = 3;
const MAX_LATENCY_MS: u64 = 11;

/// What an actor handed to the OS. `app`, `starts` and `next` are fsynced with every write;
/// `cached` sits in the page cache until the receiver moves it to `synced`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Disk {
    /// The application's observation log (the harness reads it).
    app: AppLog,
    /// How many times this actor started (fsynced at each start).
    starts: u64,
    /// Receiver: numbers fsynced.
    synced: Vec<u32>,
    /// Receiver: numbers written but not yet fsynced.
    cached: Vec<u32>,
    /// Pinger: the next number to send.
    next: u32,
}

impl Durable for Disk {
    fn after_power_loss(&self) -> Self {
        Disk {
            cached: Vec::new(),
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Msg {
    Num(u32),
    Ack(u32),
    /// The connection to the peer was reset.
    Reset,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    disk: Disk,
    /// Connection resets noticed since this process started (volatile).
    resets: u64,
}

#[derive(Clone, Debug)]
enum ToyActor {
    Pinger { messages: u32, interval: Duration },
    Receiver { flush_every: usize },
}

fn msg_id(n: u32) -> MsgId {
    MsgId {
        producer: 0,
        seq: n,
    }
}

/// The receiver's consumer session: restarts in the high half, resets in the low half.
fn session(starts: u64, resets: u64) -> u64 {
    (starts << 32) | resets
}

fn starts_of(session: u64) -> u64 {
    session >> 32
}

fn resets_of(session: u64) -> u64 {
    session & 0xffff_ffff
}

impl Actor for ToyActor {
    type Msg = Msg;
    type Timer = Timer;
    type State = State;
    type Storage = Disk;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<Disk>, o: &mut Out<Self>) -> State {
        let mut disk = storage.clone().unwrap_or_default();
        disk.starts += 1;
        match self {
            ToyActor::Pinger { interval, .. } => {
                o.set_timer(Timer::Tick, *interval..*interval);
            }
            ToyActor::Receiver { .. } => {
                let kept = (disk.synced.len() + disk.cached.len()) as u64;
                disk.app.push(Op::Commit {
                    group: 0,
                    consumer: 0,
                    scope: 0,
                    position: kept,
                });
            }
        }
        o.save(disk.clone());
        State { disk, resets: 0 }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, msg) {
            (_, Msg::Reset) => state.to_mut().resets += 1,
            (ToyActor::Pinger { .. }, Msg::Ack(n)) => {
                let ack = Op::Ack { msg: msg_id(n) };
                if !state.disk.app.iter().any(|op| *op == ack) {
                    let s = state.to_mut();
                    s.disk.app.push(ack);
                    o.save(s.disk.clone());
                }
            }
            (ToyActor::Receiver { flush_every }, Msg::Num(n)) => {
                let s = state.to_mut();
                let session = session(s.disk.starts, s.resets);
                s.disk.app.push(Op::Deliver {
                    msg: msg_id(n),
                    group: 0,
                    consumer: 0,
                    scope: 0,
                    position: Some(n as u64),
                    session,
                    redelivered: None,
                });
                s.disk.cached.push(n);
                if s.disk.cached.len() >= *flush_every {
                    let flushed = std::mem::take(&mut s.disk.cached);
                    s.disk.synced.extend(flushed);
                }
                // Acked only once the delivery is on disk.
                o.save(s.disk.clone());
                o.send(src, Msg::Ack(n));
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, _timer: &Timer, o: &mut Out<Self>) {
        let ToyActor::Pinger { messages, interval } = self else {
            return;
        };
        if state.disk.next >= *messages {
            return;
        }
        let s = state.to_mut();
        let n = s.disk.next;
        s.disk.next += 1;
        s.disk.app.push(Op::Send {
            msg: msg_id(n),
            scope: 0,
            audience: vec![0],
            key: None,
        });
        o.save(s.disk.clone());
        o.send(Id::from(RECEIVER), Msg::Num(n));
        o.set_timer(Timer::Tick, *interval..*interval);
    }
}

#[derive(Clone, Debug)]
struct Toy {
    messages: u32,
    flush_every: usize,
    window: Duration,
    drain: Duration,
}

impl Toy {
    fn new(messages: u32) -> Self {
        Toy {
            messages,
            flush_every: 4,
            window: Duration::from_secs(10),
            drain: Duration::from_secs(1),
        }
    }
}

impl System for Toy {
    type Actor = ToyActor;
    type Storage = Disk;

    const NAME: &'static str = "toy";

    fn summary() -> &'static str {
        "a pinger sends numbered messages to a receiver on a timer"
    }

    fn scenarios() -> Vec<Scenario> {
        Vec::new()
    }

    fn keys() -> Vec<Key> {
        Vec::new()
    }

    fn validate(_config: &Config) -> Result<(), ConfigError> {
        Ok(())
    }

    fn build(_config: &Config, workload: Workload) -> Self {
        Toy::new(workload.messages)
    }

    fn nodes(&self) -> Vec<Node<ToyActor>> {
        vec![
            Node {
                name: "pinger".to_string(),
                role: Role::Producer,
                actor: ToyActor::Pinger {
                    messages: self.messages,
                    interval: Duration::from_millis(INTERVAL_MS),
                },
            },
            Node {
                name: "receiver".to_string(),
                role: Role::Consumer,
                actor: ToyActor::Receiver {
                    flush_every: self.flush_every,
                },
            },
        ]
    }

    fn app_log(storage: &Disk) -> Option<&AppLog> {
        Some(&storage.app)
    }

    fn is_leader(_state: &State) -> bool {
        false
    }

    fn reset(_peer: Id) -> Option<Msg> {
        Some(Msg::Reset)
    }

    fn describe(msg: &Msg) -> Option<String> {
        Some(match msg {
            Msg::Num(n) => format!("num {n}"),
            Msg::Ack(n) => format!("ack {n}"),
            Msg::Reset => "reset".to_string(),
        })
    }

    fn ordering() -> OrderingPromise {
        OrderingPromise::default()
    }

    fn fault_window(&self) -> Duration {
        self.window
    }

    fn drain(&self) -> Duration {
        self.drain
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers over histories and schedules.

fn schedule(window_ms: u64, faults: Vec<ScheduledFault>) -> Schedule {
    Schedule { window_ms, faults }
}

fn fault(at_ms: u64, for_ms: u64, op: FaultOp) -> ScheduledFault {
    ScheduledFault { at_ms, for_ms, op }
}

/// One delivery to the receiver: when, which number, in which session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delivery {
    time_ms: u64,
    n: u32,
    session: u64,
}

fn deliveries(h: &History) -> Vec<Delivery> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Deliver {
                msg,
                session,
                position,
                ..
            } => {
                assert_eq!(e.node, "receiver");
                assert_eq!(*position, Some(msg.seq as u64));
                Some(Delivery {
                    time_ms: e.time_ms,
                    n: msg.seq,
                    session: *session,
                })
            }
            _ => None,
        })
        .collect()
}

fn numbers(h: &History) -> Vec<u32> {
    deliveries(h).iter().map(|d| d.n).collect()
}

/// When the pinger sent each number.
fn sent_at(h: &History) -> BTreeMap<u32, u64> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Send { msg, .. } => Some((msg.seq, e.time_ms)),
            _ => None,
        })
        .collect()
}

fn acked(h: &History) -> BTreeSet<u32> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Ack { msg } => Some(msg.seq),
            _ => None,
        })
        .collect()
}

/// The receiver's starts: (time, numbers it found on its disk).
fn commits(h: &History) -> Vec<(u64, u64)> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Commit { position, .. } => Some((e.time_ms, *position)),
            _ => None,
        })
        .collect()
}

fn count_each(ns: &[u32]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for n in ns {
        *counts.entry(*n).or_default() += 1;
    }
    counts
}

fn in_order(ns: &[u32]) -> bool {
    ns.windows(2).all(|w| w[0] < w[1])
}

fn kinds(r: &Run, invariant: Invariant) -> BTreeSet<Kind> {
    check(invariant, &r.history, &Toy::ordering())
        .iter()
        .map(|v| v.kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The toy plugs in the way a broker does.

#[test]
fn the_toy_is_built_from_a_config_and_a_workload() {
    assert_eq!(Toy::NAME, "toy");
    assert!(!Toy::summary().is_empty());
    assert!(Toy::scenarios().is_empty());
    let config = Config::parse(Toy::NAME, &Toy::keys(), &[]).unwrap();
    Toy::validate(&config).unwrap();
    let err = Config::parse(Toy::NAME, &Toy::keys(), &["acks=1".to_string()]).unwrap_err();
    assert!(err.to_string().contains("acks"), "{err}");
    let toy = Toy::build(
        &config,
        Workload {
            messages: 7,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    );
    let nodes = toy.nodes();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (nodes[PINGER].role, nodes[RECEIVER].role),
        (Role::Producer, Role::Consumer)
    );
    let r = run(&toy, 1, &schedule(500, vec![]), true);
    assert_eq!(numbers(&r.history), (0..7).collect::<Vec<_>>());
    // The trace names nodes and describes messages in the toy's words.
    let lines: Vec<String> = r
        .trace
        .iter()
        .map(|l| format!("{} {}", l.node, l.text))
        .collect();
    assert!(
        lines.contains(&"receiver <- pinger: num 6".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"pinger <- receiver: ack 6".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"receiver app: deliver p0:6 to group 0 from position 6".to_string()));
}

// ---------------------------------------------------------------------------------------------
// 1. No faults.

#[test]
fn without_faults_every_number_arrives_once_in_order() {
    let toy = Toy::new(50);
    let r = run(&toy, 7, &schedule(1000, vec![]), false);
    let h = &r.history;

    assert_eq!(numbers(h), (0..50).collect::<Vec<_>>());
    assert_eq!(h.deliveries(), 50);
    assert_eq!(acked(h), (0..50).collect());
    // One session, one start, nothing on disk at that start.
    assert!(deliveries(h).iter().all(|d| d.session == session(1, 0)));
    assert_eq!(commits(h), vec![(BOOT_MS, 0)]);
    // 50 numbers and 50 acks crossed the network, and no reset.
    assert_eq!(r.delivered, 100);
    // The pinger ticks exactly every INTERVAL_MS; each number takes one madsim latency.
    let sent = sent_at(h);
    for (n, at) in &sent {
        assert_eq!(
            *at,
            BOOT_MS + INTERVAL_MS * (*n as u64 + 1),
            "send time of {n}"
        );
    }
    let latencies: BTreeSet<u64> = deliveries(h)
        .iter()
        .map(|d| d.time_ms - sent[&d.n])
        .collect();
    assert!(
        latencies
            .iter()
            .all(|l| (MIN_LATENCY_MS..=MAX_LATENCY_MS).contains(l)),
        "{latencies:?}"
    );
    assert!(latencies.len() > 3, "latencies vary: {latencies:?}");
    // The run lasts the window plus the drain.
    assert_eq!(r.simulated_ms, 1000 + toy.drain.as_millis() as u64);
    assert!(evaluate(h, &Invariant::SELECTABLE, &Toy::ordering()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. Determinism.

fn busy_schedule() -> Schedule {
    schedule(
        2000,
        vec![
            fault(50, 300, FaultOp::Reorder),
            fault(100, 400, FaultOp::Duplicate { per_mille: 300 }),
            fault(
                300,
                200,
                FaultOp::Crash {
                    target: Target::Node(RECEIVER),
                },
            ),
            fault(600, 500, FaultOp::Loss { per_mille: 100 }),
            fault(
                1200,
                300,
                FaultOp::Partition {
                    split: Split::OneWay(vec![PINGER]),
                },
            ),
        ],
    )
}

#[test]
fn same_seed_and_schedule_replay_identically_and_other_seeds_differ() {
    let toy = Toy::new(150);
    let plan = busy_schedule();
    let a = run(&toy, 42, &plan, true);
    let b = run(&toy, 42, &plan, true);
    assert!(a.trace.len() > 300, "the trace records the run");
    assert_eq!(a.history, b.history);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.delivered, b.delivered);
    assert_eq!(a.simulated_ms, b.simulated_ms);
    // The trace is only recorded on request; the history does not depend on it.
    let quiet = run(&toy, 42, &plan, false);
    assert!(quiet.trace.is_empty());
    assert_eq!(quiet.history, a.history);

    // Another seed draws other latencies even without faults.
    let calm = schedule(1000, vec![]);
    let x = run(&toy, 1, &calm, true);
    let y = run(&toy, 2, &calm, true);
    assert_eq!(numbers(&x.history), numbers(&y.history));
    assert_ne!(x.trace, y.trace);
    let c = run(&toy, 43, &plan, true);
    assert_ne!(a.trace, c.trace);
}

// ---------------------------------------------------------------------------------------------
// 3. Reorder.

#[test]
fn reorder_breaks_fifo_and_nothing_else_does() {
    let toy = Toy::new(50);
    let mut reordered = 0;
    for seed in 1..=5 {
        let r = run(
            &toy,
            seed,
            &schedule(800, vec![fault(0, 800, FaultOp::Reorder)]),
            false,
        );
        let ns = numbers(&r.history);
        // Reordering delays packets, it drops and copies none.
        let counts = count_each(&ns);
        assert_eq!(counts.len(), 50, "seed {seed}: {ns:?}");
        assert!(counts.values().all(|c| *c == 1), "seed {seed}: {ns:?}");
        if !in_order(&ns) {
            reordered += 1;
            assert!(kinds(&r, Invariant::Ordering).contains(&Kind::Reordered));
        }

        let calm = run(&toy, seed, &schedule(800, vec![]), false);
        assert_eq!(numbers(&calm.history), (0..50).collect::<Vec<_>>());
        assert!(check(Invariant::Ordering, &calm.history, &Toy::ordering()).is_empty());
    }
    assert!(reordered >= 1, "no seed reordered anything");
}

// ---------------------------------------------------------------------------------------------
// 4. Loss.

#[test]
fn loss_breaks_the_connection_so_gaps_only_open_at_a_reset() {
    let toy = Toy::new(200);
    // A break keeps the connection down for RECONNECT: every number sent meanwhile is lost.
    let min_gap = (RECONNECT.as_millis() as u64 / INTERVAL_MS) as u32;
    let mut gaps = 0;
    for seed in 1..=4 {
        let r = run(
            &toy,
            seed,
            &schedule(3000, vec![fault(0, 3000, FaultOp::Loss { per_mille: 100 })]),
            false,
        );
        let ds = deliveries(&r.history);
        let ns: Vec<u32> = ds.iter().map(|d| d.n).collect();
        assert!(
            in_order(&ns),
            "seed {seed}: never reordered nor duplicated: {ns:?}"
        );
        assert!(ns.len() < 200, "seed {seed}: 10% loss lost nothing");
        assert!(
            ns[0] == 0 || ns[0] >= min_gap,
            "seed {seed}: first delivery {}",
            ns[0]
        );
        for i in 1..ds.len() {
            let (a, b) = (ds[i - 1], ds[i]);
            assert!(b.session >= a.session, "seed {seed}: sessions only grow");
            assert_eq!(starts_of(b.session), 1, "seed {seed}: nobody restarted");
            let missing = b.n - a.n - 1;
            if missing == 0 {
                continue;
            }
            // TCP never delivers past a gap: numbers go missing only where the connection broke
            // and reset. What was sent before the lost packet still arrives, so the reset notice
            // may come one delivery before the gap; everything sent while the connection was down
            // (RECONNECT, give or take one) is gone.
            let before = if i >= 2 { ds[i - 2].session } else { 0 };
            assert!(
                b.session > before,
                "seed {seed}: gap within a connection: {a:?} {b:?}"
            );
            assert!(
                missing + 1 >= min_gap,
                "seed {seed}: {missing} missing after a reset: {a:?} {b:?}"
            );
            gaps += 1;
        }
        // The acks only follow deliveries, and nothing is delivered twice or out of order.
        assert!(evaluate(&r.history, &Invariant::SELECTABLE, &Toy::ordering()).is_empty());
    }
    assert!(gaps >= 4, "only {gaps} gaps in four lossy runs");
}

// ---------------------------------------------------------------------------------------------
// 5. Duplicate.

#[test]
fn duplicate_delivers_some_number_twice_but_loses_none() {
    let toy = Toy::new(50);
    let mut duplicated = 0;
    for seed in 1..=3 {
        // Numbers 0..=28 are sent while duplication is on; 29.. after it ends.
        let r = run(
            &toy,
            seed,
            &schedule(
                800,
                vec![fault(0, 295, FaultOp::Duplicate { per_mille: 500 })],
            ),
            false,
        );
        let sent = sent_at(&r.history);
        let counts = count_each(&numbers(&r.history));
        assert_eq!(counts.len(), 50, "seed {seed}: every number arrives");
        for (n, c) in &counts {
            assert!(*c <= 2, "seed {seed}: {n} arrived {c} times");
            if sent[n] > 295 {
                assert_eq!(*c, 1, "seed {seed}: {n} was sent after duplication ended");
            }
        }
        let twice: Vec<u32> = counts
            .iter()
            .filter(|(_, c)| **c == 2)
            .map(|(n, _)| *n)
            .collect();
        if !twice.is_empty() {
            duplicated += 1;
            let dups = check(Invariant::AtMostOnce, &r.history, &Toy::ordering());
            let flagged: Vec<u32> = dups.iter().map(|v| v.msgs[0].seq).collect();
            assert_eq!(flagged, twice, "seed {seed}");
            assert!(dups.iter().all(|v| v.kind == Kind::Duplicate));
        }
        assert!(check(Invariant::AtLeastOnce, &r.history, &Toy::ordering()).is_empty());
    }
    assert!(duplicated >= 1, "no seed duplicated anything");
}

// ---------------------------------------------------------------------------------------------
// 6. Partition.

#[test]
fn partition_drops_what_is_sent_across_it_and_delivery_resumes_when_it_heals() {
    let toy = Toy::new(200);
    let (from, until) = (505, 1505);
    let r = run(
        &toy,
        3,
        &schedule(
            2500,
            vec![fault(
                from,
                until - from,
                FaultOp::Partition {
                    split: Split::Halves(vec![RECEIVER]),
                },
            )],
        ),
        true,
    );
    let h = &r.history;
    let sent = sent_at(h);
    let delivered: BTreeSet<u32> = numbers(h).into_iter().collect();
    assert_eq!(sent.len(), 200);
    for (n, at) in &sent {
        if (from..until).contains(at) {
            assert!(
                !delivered.contains(n),
                "{n} sent at {at} crossed the partition"
            );
        } else if *at + MAX_LATENCY_MS < from || *at >= until {
            assert!(delivered.contains(n), "{n} sent at {at} was lost");
        }
    }
    let first_after = deliveries(h)
        .into_iter()
        .find(|d| d.time_ms >= from)
        .unwrap();
    assert!(first_after.time_ms > until, "{first_after:?}");
    let first_tick = sent.iter().find(|(_, at)| **at >= until).map(|(n, _)| *n);
    assert_eq!(
        Some(first_after.n),
        first_tick,
        "the first tick after the heal"
    );
    assert!(in_order(&numbers(h)));
    assert!(check(Invariant::AtLeastOnce, h, &Toy::ordering()).is_empty());
    let texts: Vec<&str> = r
        .trace
        .iter()
        .filter(|l| l.node == "nemesis")
        .map(|l| l.text.as_str())
        .collect();
    assert!(texts.contains(&"partition: {receiver} | rest"), "{texts:?}");
    assert!(texts.contains(&"partition heals"), "{texts:?}");
}

#[test]
fn one_way_partition_cuts_only_the_isolated_side_s_sends() {
    let toy = Toy::new(100);
    let (from, until) = (305, 705);
    let r = run(
        &toy,
        4,
        &schedule(
            1500,
            vec![fault(
                from,
                until - from,
                FaultOp::Partition {
                    split: Split::OneWay(vec![RECEIVER]),
                },
            )],
        ),
        false,
    );
    let h = &r.history;
    // The receiver still hears every number, on the same connection.
    assert_eq!(numbers(h), (0..100).collect::<Vec<_>>());
    assert!(deliveries(h).iter().all(|d| d.session == session(1, 0)));
    // But its acks do not cross while the partition lasts (in flight at its start: lost too).
    let acks = acked(h);
    for d in deliveries(h) {
        if (from..until).contains(&d.time_ms) {
            assert!(!acks.contains(&d.n), "the ack of {} crossed", d.n);
        } else if d.time_ms + MAX_LATENCY_MS < from || d.time_ms >= until {
            assert!(acks.contains(&d.n), "the ack of {} was lost", d.n);
        }
    }
    assert!(acks.len() < 100 - 35, "{} acks", acks.len());
}

// ---------------------------------------------------------------------------------------------
// 7. Crash and power loss.

/// The receiver notices one reset (a short burst of total loss), then goes down at 1035 for
/// 300 ms by `op`.
fn crash_run(op: FaultOp) -> Run {
    let toy = Toy::new(150);
    let plan = schedule(
        2000,
        vec![
            fault(195, 20, FaultOp::Loss { per_mille: 1000 }),
            fault(1035, 300, op),
        ],
    );
    run(&toy, 5, &plan, false)
}

/// Deliveries before the restart, numbers the receiver found on its disk at the restart, and
/// deliveries after it.
fn around_restart(r: &Run) -> (Vec<Delivery>, u64, Vec<Delivery>) {
    let ds = deliveries(&r.history);
    let cs = commits(&r.history);
    assert_eq!(cs.len(), 2, "two starts: {cs:?}");
    assert_eq!(cs[0], (BOOT_MS, 0));
    let (restart_ms, kept) = cs[1];
    assert_eq!(restart_ms, 1335 + BOOT_MS);
    let (before, after): (Vec<Delivery>, Vec<Delivery>) =
        ds.into_iter().partition(|d| starts_of(d.session) == 1);
    assert!(before.iter().all(|d| d.time_ms <= 1035));
    assert!(after
        .iter()
        .all(|d| d.time_ms > 1335 && starts_of(d.session) == 2));
    (before, kept, after)
}

#[test]
fn crash_keeps_the_page_cache_and_power_loss_keeps_only_what_was_fsynced() {
    let target = Target::Node(RECEIVER);
    let crash = crash_run(FaultOp::Crash { target });
    let power = crash_run(FaultOp::Power { target });

    for (what, r) in [("crash", &crash), ("power", &power)] {
        let (before, _, after) = around_restart(r);
        // Before: the burst of loss reset the connection once, in memory.
        assert_eq!(resets_of(before.last().unwrap().session), 1, "{what}");
        // After: the start count came back from disk, the reset count did not.
        assert!(
            after.iter().all(|d| d.session == session(2, 0)),
            "{what}: {after:?}"
        );
        // Numbers sent while the receiver was down are lost; from the restart on all arrive.
        let sent = sent_at(&r.history);
        let got: BTreeSet<u32> = numbers(&r.history).into_iter().collect();
        for (n, at) in &sent {
            if (1035..1335).contains(at) {
                assert!(
                    !got.contains(n),
                    "{what}: {n} sent at {at} reached a dead node"
                );
            }
            if *at > 1335 {
                assert!(got.contains(n), "{what}: {n} sent at {at} was lost");
            }
        }
        let first_tick = sent.iter().find(|(_, at)| **at > 1335).map(|(n, _)| *n);
        assert_eq!(
            Some(after.first().unwrap().n),
            first_tick,
            "{what}: the first tick after the restart"
        );
        assert!(
            check(Invariant::AtLeastOnce, &r.history, &Toy::ordering()).is_empty(),
            "{what}"
        );
    }

    // A crash keeps everything the receiver wrote, fsynced or not.
    let (before, kept, _) = around_restart(&crash);
    assert_eq!(kept, before.len() as u64);
    // A power loss keeps only the fsynced numbers: a multiple of flush_every.
    let (before, kept, _) = around_restart(&power);
    let flush = Toy::new(0).flush_every as u64;
    let written = before.len() as u64;
    assert_ne!(
        written % flush,
        0,
        "the test needs unsynced numbers at the crash"
    );
    assert_eq!(kept, written - written % flush);
}

/// "After the fault window the nemesis heals everything": also a fault that lasts no time, and
/// one that starts where the window ends. Today both stay in force through the drain — the
/// timeline sorts a fault's end before its own start when they fall on the same instant, so
/// the end finds nothing to undo and the start then applies the fault for good.
#[test]
fn a_fault_of_no_length_or_at_the_window_end_is_healed_before_the_drain() {
    let toy = Toy::new(150);
    let crash = FaultOp::Crash {
        target: Target::Node(RECEIVER),
    };
    let plans = [
        schedule(2000, vec![fault(500, 0, crash.clone())]),
        schedule(1000, vec![fault(1000, 300, crash)]),
    ];
    // The last number the receiver got under each plan, and how many it got.
    let got: Vec<(Option<u32>, usize)> = plans
        .iter()
        .map(|plan| {
            let ns = numbers(&run(&toy, 5, plan, false).history);
            (ns.last().copied(), ns.len())
        })
        .collect();
    assert!(
        got.iter().all(|(last, _)| *last == Some(149)),
        "the receiver is still down during the drain: (last number, count) = {got:?} for {plans:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Pause.

#[test]
fn pause_holds_messages_until_the_receiver_resumes_and_loses_none() {
    let toy = Toy::new(100);
    let (from, until) = (505, 805);
    let r = run(
        &toy,
        9,
        &schedule(
            1500,
            vec![fault(
                from,
                until - from,
                FaultOp::Pause {
                    target: Target::Node(RECEIVER),
                },
            )],
        ),
        false,
    );
    let h = &r.history;
    let ds = deliveries(h);
    // Nothing lost, nothing twice, in order: the connection survived the pause.
    assert_eq!(numbers(h), (0..100).collect::<Vec<_>>());
    assert!(
        ds.iter().all(|d| d.session == session(1, 0)),
        "no reset, no restart"
    );
    assert_eq!(commits(h).len(), 1);
    // The paused receiver handles nothing; what was sent meanwhile arrives at the resume.
    assert!(!ds.iter().any(|d| (from + 1..until).contains(&d.time_ms)));
    let sent = sent_at(h);
    let held: Vec<&Delivery> = ds
        .iter()
        .filter(|d| (from..until).contains(&sent[&d.n]))
        .collect();
    assert_eq!(held.len(), 30);
    // The backlog is handled from the resume on. (madsim hands a node one queued packet per
    // simulated ms, last-in first, so the in-order release waits for the oldest one.)
    let last = until + held.len() as u64 + MAX_LATENCY_MS;
    assert!(
        held.iter().all(|d| (until..=last).contains(&d.time_ms)),
        "{held:?}"
    );
    assert!(evaluate(h, &Invariant::SELECTABLE, &Toy::ordering()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 9. The nemesis's schedules and fault sets.

#[test]
fn schedules_are_a_function_of_the_seed() {
    let toy = Toy::new(50);
    let all = FaultSet::all();
    let window = toy.window.as_millis() as u64;
    let mut distinct = BTreeSet::new();
    for seed in 0..20 {
        let s = schedule_for(&toy, seed, &all);
        assert_eq!(s, schedule_for(&toy, seed, &all), "seed {seed}");
        assert!((window / 6..=window).contains(&s.window_ms), "{s:?}");
        assert!((3..=15).contains(&s.faults.len()), "{s:?}");
        assert!(s.faults.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        for f in &s.faults {
            assert!(f.at_ms < s.window_ms);
            assert!((500..=45_000).contains(&f.for_ms));
            if let FaultOp::Crash { target }
            | FaultOp::Power { target }
            | FaultOp::Pause { target } = f.op
            {
                // Only the receiver may crash or pause; the pinger is a producer.
                assert_ne!(target, Target::Node(PINGER), "{s:?}");
            }
        }
        distinct.insert(format!("{s:?}"));
    }
    assert!(
        distinct.len() >= 19,
        "20 seeds drew {} schedules",
        distinct.len()
    );

    // Only the allowed faults, and none at all for `none`.
    let some: FaultSet = "crash,loss".parse().unwrap();
    for seed in 0..20 {
        let s = schedule_for(&toy, seed, &some);
        assert!(s
            .faults
            .iter()
            .all(|f| matches!(f.op, FaultOp::Crash { .. } | FaultOp::Loss { .. })));
        let none = schedule_for(&toy, seed, &FaultSet::default());
        assert!(none.faults.is_empty());
    }
    // The cast the nemesis sees: both names, only the receiver faulty, and it is a client.
    let c = cast(&toy);
    assert_eq!(c.names, ["pinger", "receiver"]);
    assert_eq!(c.faulty, [RECEIVER]);
    assert_eq!(c.clients, [RECEIVER]);
}

#[test]
fn fault_sets_parse_and_name_what_they_reject() {
    let all: FaultSet = "all".parse().unwrap();
    assert_eq!(all, FaultSet::all());
    assert_eq!(all.0.len(), 7);
    assert_eq!(all.to_string(), "all");
    let none: FaultSet = "none".parse().unwrap();
    assert!(none.0.is_empty());
    assert_eq!(none.to_string(), "none");
    let some: FaultSet = "crash,loss".parse().unwrap();
    assert_eq!(some.names(), ["crash", "loss"]);
    assert_eq!(some.to_string(), "crash,loss");
    assert_eq!(" loss , crash ".parse::<FaultSet>().unwrap(), some);
    // Every name round-trips.
    for name in FaultSet::all().names() {
        assert_eq!(name.parse::<FaultSet>().unwrap().to_string(), name);
    }
    let err = "crash,meteor".parse::<FaultSet>().unwrap_err();
    assert!(err.contains("'meteor'"), "{err}");
    assert!(
        err.contains("partition"),
        "the error lists the allowed names: {err}"
    );
    assert!("Crash".parse::<FaultSet>().is_err());
}

// ---------------------------------------------------------------------------------------------
// 10. Shrinking.

#[test]
fn shrink_keeps_the_fault_that_matters_and_drops_the_rest() {
    let toy = Toy::new(50);
    let seed = 11;
    let original = schedule(
        8000,
        vec![
            fault(0, 4000, FaultOp::Reorder),
            fault(100, 2000, FaultOp::Loss { per_mille: 0 }),
            // Aimed at the leader: nobody leads and there are no servers, so it hits nobody.
            fault(
                200,
                3000,
                FaultOp::Crash {
                    target: Target::Leader,
                },
            ),
            // After the last number arrived: nothing left to disturb.
            fault(
                3000,
                2000,
                FaultOp::Partition {
                    split: Split::Halves(vec![RECEIVER]),
                },
            ),
            fault(
                5000,
                2000,
                FaultOp::Crash {
                    target: Target::Node(RECEIVER),
                },
            ),
        ],
    );
    let r = run(&toy, seed, &original, false);
    assert!(kinds(&r, Invariant::Ordering).contains(&Kind::Reordered));

    let minimal = shrink(&toy, seed, &original, Invariant::Ordering, 100);
    assert_eq!(minimal.window_ms, original.window_ms);
    assert_eq!(minimal.faults.len(), 1, "{minimal:?}");
    assert_eq!(minimal.faults[0].op, FaultOp::Reorder);
    assert_eq!(minimal.faults[0].at_ms, 0);
    assert!(
        minimal.faults[0].for_ms <= 1000,
        "halved while > 1 s: {minimal:?}"
    );
    let again = run(&toy, seed, &minimal, false);
    assert!(!check(Invariant::Ordering, &again.history, &Toy::ordering()).is_empty());
    // Shrinking is deterministic too.
    assert_eq!(
        shrink(&toy, seed, &original, Invariant::Ordering, 100),
        minimal
    );
}

// ---------------------------------------------------------------------------------------------
// The swarm: every fault, many seeds.

#[test]
fn sweep_under_every_fault_keeps_the_toys_guarantee_and_is_deterministic() {
    let toy = Toy {
        window: Duration::from_secs(3),
        ..Toy::new(60)
    };
    let checks = [Invariant::AtLeastOnce];
    let a = sweep(&toy, 0..16, &FaultSet::all(), &checks, &|| {});
    let b = sweep(&toy, 0..16, &FaultSet::all(), &checks, &|| {});
    assert_eq!(
        a.iter().map(|r| r.seed).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        // An ack follows a recorded delivery, whatever the faults.
        assert!(
            x.violations.is_empty(),
            "seed {}: {:?}",
            x.seed,
            x.violations
        );
        assert_eq!(
            (x.simulated_ms, x.delivered, x.deliveries),
            (y.simulated_ms, y.delivered, y.deliveries)
        );
        // The same seed run alone gives the same result.
        let s = schedule_for(&toy, x.seed, &FaultSet::all());
        let r = run(&toy, x.seed, &s, false);
        assert_eq!(r.history.deliveries(), x.deliveries);
        // The window, the drain, and a ms for each nemesis step due at an instant already
        // reached (madsim's minimum sleep).
        let steps = 2 * s.faults.len() as u64 + 1;
        assert!(
            (s.window_ms + 1000..=s.window_ms + 1000 + steps).contains(&r.simulated_ms),
            "seed {}: {} ms",
            x.seed,
            r.simulated_ms
        );
    }
}
