//! The Mnesia side of the RabbitMQ model (3.x), driven by hand: a restarting node waits for its
//! tables (`rabbit_table:wait_for_replicated`) and takes them from a running peer instead of
//! serving from its own disk; it gives up after `mnesia_table_loading_retry_limit` timeouts;
//! `pause_minority`'s `rabbit:stop()` takes time, and 3.3.5's `pause_minority_guard` withholds
//! the confirms meanwhile.
//!
//! Node ids (nodes=3, producers=1, consumers=1): 0..=2 are n1..n3, 3 the publisher, 4 the consumer.

use mqcheck_brokers::rabbitmq::{
    Boot, ClassicState, NodeState, RabbitDisk, RabbitMq, RabbitMsg, RabbitState, RabbitTimer,
    TABLE_LOADING_RETRY_LIMIT,
};
use mqcheck_brokers::Workload;
use mqcheck_invariants::MsgId;
use stateright::actor::{Command as Cmd, Id};

mod harness;

type Step = harness::Cmd<RabbitMq>;
type Cluster = harness::Actors<RabbitMq>;

const PUBLISHER: usize = 3;

/// Starts the three nodes and opens the publisher's connection to n1.
fn start_with_publisher(c: &mut Cluster) {
    for i in 0..3 {
        c.start(i);
    }
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
}

fn cluster(sets: &[&str]) -> Cluster {
    Cluster::of(&harness::system::<RabbitMq>(
        sets,
        Workload {
            messages: 3,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    ))
}

fn node(c: &Cluster, i: usize) -> &NodeState {
    match c.state(i) {
        RabbitState::Node(n) => n,
        s => panic!("not a node: {s:?}"),
    }
}

fn classic(c: &Cluster, i: usize) -> &ClassicState {
    &node(c, i).classic
}

fn disk(c: &Cluster, i: usize) -> RabbitDisk {
    RabbitDisk::Server(node(c, i).disk.clone())
}

fn publish(seq: u64) -> RabbitMsg {
    RabbitMsg::Publish {
        channel: 1,
        seq,
        msg: MsgId {
            producer: 0,
            seq: seq as u32,
        },
        persistent: true,
        mandatory: false,
    }
}

const MIRRORED: [&str; 4] = [
    "version=3.13",
    "queue.type=mirrored",
    "ha-params=2",
    "ha-promote-on-failure=when-synced",
];

/// n1 leads with n2 as its synchronised mirror; the publisher's first message is on both.
fn replicated(sets: &[&str]) -> Cluster {
    let mut c = cluster(sets);
    start_with_publisher(&mut c);
    let replicated = c.deliver(0, PUBLISHER, publish(1));
    for m in harness::sent_to::<RabbitMq>(&replicated, 1) {
        let ok = c.deliver(1, 0, m);
        for m in harness::sent_to::<RabbitMq>(&ok, 0) {
            c.deliver(0, 1, m);
        }
    }
    assert!(classic(&c, 0).leader);
    assert_eq!(classic(&c, 1).messages.len(), 1, "n2 mirrors the message");
    c
}

#[test]
fn a_restarted_node_waits_for_its_tables_and_takes_the_running_peers_record() {
    let mut c = replicated(&MIRRORED);
    // n1's process dies (a power loss: n2 has not noticed) and starts again from its disk,
    // whose record names it leader.
    let restarted = c.restart(0, Some(disk(&c, 0)));
    assert!(matches!(node(&c, 0).boot, Boot::Waiting { .. }));
    for peer in [1, 2] {
        assert!(
            harness::sent_to::<RabbitMq>(&restarted, peer).contains(&RabbitMsg::WaitForTables),
            "asks n{} for the tables",
            peer + 1
        );
    }
    // Booting, it serves nobody: no stale record confirms anything.
    let refused = c.deliver(0, PUBLISHER, RabbitMsg::Open);
    assert_eq!(
        harness::sent_to::<RabbitMq>(&refused, PUBLISHER),
        vec![RabbitMsg::NotLeader { leader: None }]
    );
    // n2 learns from the new incarnation that the old one died: being the synchronised mirror,
    // it takes over, and answers with the record as it is now.
    let answer = c.deliver(1, 0, RabbitMsg::WaitForTables);
    assert!(classic(&c, 1).leader, "n2 promoted");
    let tables = harness::sent_to::<RabbitMq>(&answer, 0)
        .into_iter()
        .find(|m| matches!(m, RabbitMsg::Tables { .. }))
        .expect("n2 sends its tables");
    let booted = c.deliver(0, 1, tables);
    assert_eq!(node(&c, 0).boot, Boot::Running);
    let n1 = classic(&c, 0);
    assert!(!n1.leader, "n1 does not serve from its own copy");
    assert!(n1.messages.is_empty() && node(&c, 0).disk.store.is_empty());
    assert_eq!(n1.record.as_ref().unwrap().leader, Id::from(1));
    assert!(harness::sent_to::<RabbitMq>(&booted, 1).contains(&RabbitMsg::NodeUp));
    // n2, told the application runs on n1 again, takes it back as a new mirror.
    let joined = c.deliver(1, 0, RabbitMsg::NodeUp);
    let record = classic(&c, 1).record.clone().unwrap();
    assert_eq!(record.mirrors, vec![Id::from(0)]);
    for m in harness::sent_to::<RabbitMq>(&joined, 0) {
        c.deliver(0, 1, m);
    }
    let n1 = classic(&c, 0);
    assert!(
        n1.mirror && !n1.in_sync,
        "a new mirror, unsynchronised (ha-sync-mode=manual): {n1:?}"
    );
}

#[test]
fn a_leader_with_no_mirror_to_take_over_recovers_the_queue_from_its_store() {
    // n2 is an unsynchronised mirror: with when-synced it cannot take over, so the queue waits
    // for n1, which recovers its message from disk when it comes back.
    let mut c = cluster(&[
        "version=3.13",
        "queue.type=mirrored",
        "ha-params=2",
        "ha-sync-mode=manual",
        "ha-promote-on-failure=when-synced",
    ]);
    start_with_publisher(&mut c);
    c.deliver(0, PUBLISHER, publish(1));
    c.fire(0, RabbitTimer::Fsync);
    // n2 seen down: n1 adds n3 as an unsynchronised mirror.
    let dropped = c.fire(0, RabbitTimer::PeerSilent(Id::from(1)));
    for m in harness::sent_to::<RabbitMq>(&dropped, 2) {
        c.deliver(2, 0, m);
    }
    assert!(classic(&c, 2).mirror && !classic(&c, 2).in_sync);
    // n1 restarts; n3 hears from the new incarnation and must not take over.
    c.restart(0, Some(disk(&c, 0)));
    let answer = c.deliver(2, 0, RabbitMsg::WaitForTables);
    assert!(
        !classic(&c, 2).leader,
        "when-synced: n3 is not synchronised"
    );
    let tables = harness::sent_to::<RabbitMq>(&answer, 0).remove(0);
    c.deliver(0, 2, tables);
    let n1 = classic(&c, 0);
    assert!(n1.leader, "the queue waited for its leader");
    assert_eq!(n1.messages.len(), 1, "recovered from the message store");
}

#[test]
fn a_boot_fails_after_the_retry_limit_without_any_peer_holding_the_tables() {
    let mut c = replicated(&MIRRORED);
    c.restart(0, Some(disk(&c, 0)));
    // No peer answers (they are down or partitioned): the last node down it was not, since it
    // never saw them go down.
    for _ in 1..TABLE_LOADING_RETRY_LIMIT {
        let again = c.fire(0, RabbitTimer::Tables);
        assert!(matches!(node(&c, 0).boot, Boot::Waiting { .. }));
        assert!(again
            .iter()
            .any(|cmd| matches!(cmd, Cmd::SetTimer(RabbitTimer::Tables, _))));
    }
    c.fire(0, RabbitTimer::Tables);
    assert_eq!(node(&c, 0).boot, Boot::Failed, "timeout_waiting_for_tables");
    let ticks = c.fire(0, RabbitTimer::Tick);
    assert!(
        harness::sends::<RabbitMq>(&ticks).is_empty(),
        "the VM exited: no more ticks"
    );
}

#[test]
fn the_last_node_down_loads_its_tables_from_its_own_disk() {
    let mut c = replicated(&MIRRORED);
    // n1 sees n2 and n3 go down (their connections closed), then stops itself.
    c.deliver(0, 1, RabbitMsg::Disconnected);
    c.deliver(0, 2, RabbitMsg::Disconnected);
    c.restart(0, Some(disk(&c, 0)));
    assert!(matches!(node(&c, 0).boot, Boot::Waiting { .. }));
    // Both peers answer that they have no tables loaded (booting themselves).
    c.deliver(0, 1, RabbitMsg::NoTables);
    assert!(matches!(node(&c, 0).boot, Boot::Waiting { .. }));
    c.deliver(0, 2, RabbitMsg::NoTables);
    assert_eq!(node(&c, 0).boot, Boot::Running);
    let n1 = classic(&c, 0);
    assert!(n1.leader, "the durable record names n1");
    assert_eq!(n1.messages.len(), 1);
    // A peer that was not the last down waits for n1: its own copy is not enough.
    c.restart(1, Some(disk(&c, 1)));
    c.deliver(1, 0, RabbitMsg::NoTables);
    c.deliver(1, 2, RabbitMsg::NoTables);
    assert!(matches!(node(&c, 1).boot, Boot::Waiting { .. }));
}

/// n1 leads a mirrored queue on all three nodes; n2 and n3 go silent one after the other, and
/// the publisher publishes after the first.
fn minority(version: &str) -> (Cluster, Vec<Step>, Vec<Step>) {
    let mut c = cluster(&[
        version,
        "queue.type=mirrored",
        "ha-mode=all",
        "cluster_partition_handling=pause_minority",
    ]);
    start_with_publisher(&mut c);
    c.fire(0, RabbitTimer::PeerSilent(Id::from(1)));
    c.deliver(0, PUBLISHER, publish(1));
    c.fire(0, RabbitTimer::Fsync);
    let last = c.fire(0, RabbitTimer::PeerSilent(Id::from(2)));
    let during = c.deliver(0, PUBLISHER, publish(2));
    (c, last, during)
}

fn confirms(steps: &[Step]) -> Vec<u64> {
    harness::sent_to::<RabbitMq>(steps, PUBLISHER)
        .into_iter()
        .filter_map(|m| match m {
            RabbitMsg::Confirm { seq, .. } => Some(seq),
            _ => None,
        })
        .collect()
}

#[test]
fn before_3_3_5_a_minority_confirms_while_rabbit_stop_is_under_way() {
    let (mut c, last, during) = minority("version=3.3");
    assert!(node(&c, 0).pausing && !node(&c, 0).paused);
    assert!(
        last.iter()
            .any(|cmd| matches!(cmd, Cmd::SetTimer(RabbitTimer::Stopped, _))),
        "rabbit:stop() takes time"
    );
    // The channel counts the dead mirror's confirm as given, and confirms at once.
    assert_eq!(confirms(&last), vec![1]);
    // Connections are still open: a new publish is confirmed too (after its fsync), held by n1
    // alone.
    assert!(confirms(&during).is_empty(), "not before the fsync");
    let synced = c.fire(0, RabbitTimer::Fsync);
    assert_eq!(confirms(&synced), vec![2]);
    let stopped = c.fire(0, RabbitTimer::Stopped);
    assert!(node(&c, 0).paused);
    assert!(harness::sent_to::<RabbitMq>(&stopped, PUBLISHER)
        .contains(&RabbitMsg::NotLeader { leader: None }));
}

#[test]
fn from_3_3_5_pause_minority_guard_withholds_the_confirms() {
    let (mut c, last, during) = minority("version=3.13");
    assert!(node(&c, 0).pausing);
    assert!(confirms(&last).is_empty(), "{last:?}");
    let synced = c.fire(0, RabbitTimer::Fsync);
    assert!(confirms(&during).is_empty() && confirms(&synced).is_empty());
    // With a majority in view again the guard lets confirms through.
    let (mut c, _, _) = minority("version=3.13");
    c.deliver(0, 1, RabbitMsg::Tick);
    c.deliver(0, PUBLISHER, publish(3));
    let synced = c.fire(0, RabbitTimer::Fsync);
    assert_eq!(
        confirms(&synced),
        vec![2, 3],
        "2 waited for the fsync, out of the minority"
    );
}

/// `pause_minority` at heal: n1, cut off, pauses; the majority promotes n2; when n1 sees a
/// majority again it boots and takes the majority's tables, so one leader remains — its own
/// record (which named it leader) is not merged in.
#[test]
fn a_paused_minority_comes_back_under_the_majoritys_leader() {
    let mut c = cluster(&[
        "version=3.13",
        "queue.type=mirrored",
        "ha-mode=all",
        "ha-sync-mode=automatic",
        "cluster_partition_handling=pause_minority",
    ]);
    for i in 0..3 {
        c.start(i);
    }
    c.fire(0, RabbitTimer::PeerSilent(Id::from(1)));
    c.fire(0, RabbitTimer::PeerSilent(Id::from(2)));
    c.fire(0, RabbitTimer::Stopped);
    assert!(node(&c, 0).paused);
    // The majority side: n2 and n3 see n1 down; n2, the oldest mirror, takes over.
    let promoted = c.fire(1, RabbitTimer::PeerSilent(Id::from(0)));
    c.fire(2, RabbitTimer::PeerSilent(Id::from(0)));
    for m in harness::sent_to::<RabbitMq>(&promoted, 2) {
        c.deliver(2, 1, m);
    }
    assert!(classic(&c, 1).leader);
    // The heal: n1 hears n2, sees a majority, and boots.
    let booting = c.deliver(0, 1, RabbitMsg::TickDown);
    assert!(!node(&c, 0).paused);
    assert!(harness::sent_to::<RabbitMq>(&booting, 1).contains(&RabbitMsg::WaitForTables));
    let answer = c.deliver(1, 0, RabbitMsg::WaitForTables);
    let tables = harness::sent_to::<RabbitMq>(&answer, 0)
        .into_iter()
        .find(|m| matches!(m, RabbitMsg::Tables { .. }))
        .expect("n2 has the tables");
    c.deliver(0, 1, tables);
    assert_eq!(node(&c, 0).boot, Boot::Running);
    let leaders: Vec<usize> = (0..3).filter(|i| classic(&c, *i).leader).collect();
    assert_eq!(leaders, vec![1], "one leader after the heal");
    assert!(classic(&c, 0).messages.is_empty(), "n1 comes back empty");
}

/// n1 leads with n2 and n3 as synchronised mirrors (`ha-mode=all`, automatic sync); the
/// publisher's first message is on all three.
fn mirrored_on_all() -> Cluster {
    let mut c = cluster(&[
        "version=3.13",
        "queue.type=mirrored",
        "ha-mode=all",
        "ha-sync-mode=automatic",
    ]);
    start_with_publisher(&mut c);
    let replicated = c.deliver(0, PUBLISHER, publish(1));
    for mirror in [1, 2] {
        for m in harness::sent_to::<RabbitMq>(&replicated, mirror) {
            c.deliver(mirror, 0, m);
        }
        assert_eq!(classic(&c, mirror).messages.len(), 1);
    }
    c
}

/// `remove_from_queue` runs on every membership change: n3 hears n1 stop (n2, the oldest
/// mirror, is the successor), then n2 die before it took over — n3 is now the oldest live
/// mirror and promotes itself. In the other order n3 promotes at n1's death. Either way the
/// queue is led, and holds the message.
#[test]
fn the_next_mirror_takes_over_when_the_chosen_successor_dies_too() {
    for leader_first in [true, false] {
        let mut c = mirrored_on_all();
        let deaths = [(0, RabbitMsg::Stopping), (1, RabbitMsg::Disconnected)];
        let order = if leader_first {
            [deaths[0].clone(), deaths[1].clone()]
        } else {
            [deaths[1].clone(), deaths[0].clone()]
        };
        let (first, msg) = order[0].clone();
        c.deliver(2, first, msg);
        if leader_first {
            assert!(!classic(&c, 2).leader, "n2 is the successor while alive");
        }
        let (second, msg) = order[1].clone();
        c.deliver(2, second, msg);
        let n3 = classic(&c, 2);
        assert!(n3.leader, "leader first: {leader_first}: {n3:?}");
        assert_eq!(n3.messages.len(), 1, "the message survives on n3");
        assert_eq!(n3.record.as_ref().unwrap().leader, Id::from(2));
    }
}
