//! RabbitMQ streams (`queue.type=stream`, issue 12): an osiris log with a writer and replicas,
//! publisher confirms once a majority of the members has the chunk, the coordinator's election
//! of the member with the latest tail, acknowledgements that remove nothing, consumers that
//! attach at an `x-stream-offset` and read the same records again, and the writer's
//! deduplication per channel. The actors driven message by message, then the simulator's
//! verdicts, and what RabbitMQ refuses.

#[path = "scenarios/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../brokers/tests/harness/mod.rs"]
mod harness;

use common::{bad_input, held, sim, violated};
use mqcheck_brokers::rabbitmq::{
    Member, OffsetSpec, RabbitMq, RabbitMsg, RabbitState, RabbitTimer, WriterId,
};
use mqcheck_brokers::Workload;
use mqcheck_invariants::MsgId;
use stateright::actor::Id;

/// Node ids with nodes=3, one publisher and one consumer: n1..n3, p0, c0.
const PUBLISHER: usize = 3;
const C0: usize = 4;
const STREAM: &[&str] = &["queue.type=stream", "prefetch=2", "x-stream-offset=first"];

type Cluster = harness::Actors<RabbitMq>;
type Cmds = Vec<harness::Cmd<RabbitMq>>;

fn msg(seq: u32) -> MsgId {
    MsgId { producer: 0, seq }
}

fn publish(seq: u64) -> RabbitMsg {
    RabbitMsg::Publish {
        channel: 1,
        seq,
        msg: msg(seq as u32),
        persistent: true,
        mandatory: false,
    }
}

fn cluster() -> Cluster {
    let mut c = Cluster::of(&harness::system::<RabbitMq>(STREAM, Workload::new(3, 1, 1)));
    for n in 0..3 {
        c.start(n);
    }
    c
}

/// Delivers every message the commands send among the nodes `among`, until none is left.
fn settle(c: &mut Cluster, from: usize, cmds: Cmds, among: &[usize]) -> Vec<(usize, RabbitMsg)> {
    let mut queue: Vec<(usize, usize, RabbitMsg)> = harness::sends::<RabbitMq>(&cmds)
        .into_iter()
        .map(|(to, m)| (from, to, m))
        .collect();
    let mut to_clients = Vec::new();
    while !queue.is_empty() {
        let (src, dst, m) = queue.remove(0);
        if !among.contains(&dst) {
            if dst >= 3 {
                to_clients.push((dst, m));
            }
            continue;
        }
        let out = c.deliver(dst, src, m);
        queue.extend(
            harness::sends::<RabbitMq>(&out)
                .into_iter()
                .map(|(to, m)| (dst, to, m)),
        );
    }
    to_clients
}

fn confirms(to_clients: &[(usize, RabbitMsg)]) -> Vec<u64> {
    to_clients
        .iter()
        .filter_map(|(to, m)| match m {
            RabbitMsg::Confirm { seq, .. } if *to == PUBLISHER => Some(*seq),
            _ => None,
        })
        .collect()
}

fn deliveries(to_clients: &[(usize, RabbitMsg)]) -> Vec<(u64, MsgId)> {
    to_clients
        .iter()
        .filter_map(|(to, m)| match m {
            RabbitMsg::StreamDeliver { offset, msg, .. } if *to == C0 => Some((*offset, *msg)),
            _ => None,
        })
        .collect()
}

fn node(c: &Cluster, i: usize) -> &mqcheck_brokers::rabbitmq::NodeState {
    match c.state(i) {
        RabbitState::Node(n) => n,
        _ => panic!("node {i} is a node"),
    }
}

#[test]
fn a_publish_is_confirmed_once_a_majority_of_the_members_has_its_chunk() {
    let mut c = cluster();
    assert!(
        node(&c, 0).stream.is_writer(),
        "n1 declared the stream and writes epoch 1"
    );
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    let out = c.deliver(0, PUBLISHER, publish(1));
    let chunks = harness::sends::<RabbitMq>(&out);
    assert!(
        confirms(&chunks).is_empty(),
        "the writer alone is no majority"
    );
    assert_eq!(
        chunks
            .iter()
            .filter(|(_, m)| matches!(m, RabbitMsg::StreamChunks { .. }))
            .count(),
        2,
        "the chunk goes to both replicas"
    );
    // Only n2 receives it: n1 and n2 are a majority of three.
    let to_clients = settle(&mut c, 0, out, &[0, 1]);
    assert_eq!(confirms(&to_clients), vec![1]);
    assert_eq!(node(&c, 0).stream.committed, 1);
    assert_eq!(node(&c, 2).disk.stream_log.len(), 0, "n3 never got it");
}

#[test]
fn acknowledgements_remove_nothing_and_a_consumer_reads_again_from_an_offset() {
    let mut c = cluster();
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    for seq in 1..=3 {
        let out = c.deliver(0, PUBLISHER, publish(seq));
        settle(&mut c, 0, out, &[0, 1, 2]);
    }
    c.deliver(0, C0, RabbitMsg::Open);
    let consume = |offset| RabbitMsg::StreamConsume {
        channel: 1,
        prefetch: 2,
        offset,
    };
    let first = harness::sends::<RabbitMq>(&c.deliver(0, C0, consume(OffsetSpec::First)));
    assert!(matches!(first[0], (C0, RabbitMsg::ConsumeOk)));
    assert_eq!(
        deliveries(&first),
        vec![(0, msg(1)), (1, msg(2))],
        "prefetch 2: two deliveries, then no credit"
    );
    let more = harness::sends::<RabbitMq>(&c.deliver(0, C0, RabbitMsg::Ack { tag: 1 }));
    assert_eq!(
        deliveries(&more),
        vec![(2, msg(3))],
        "an ack gives one credit back"
    );
    c.deliver(0, C0, RabbitMsg::Ack { tag: 2 });
    c.deliver(0, C0, RabbitMsg::Ack { tag: 3 });
    assert_eq!(
        node(&c, 0).disk.stream_log.len(),
        3,
        "every record acknowledged, every record still in the stream"
    );
    // `basic.consume` again with `x-stream-offset` 1: the same records at the same offsets.
    let again = harness::sends::<RabbitMq>(&c.deliver(0, C0, consume(OffsetSpec::Offset(1))));
    assert_eq!(deliveries(&again), vec![(1, msg(2)), (2, msg(3))]);
    // An ack of the earlier consumer's delivery gives the new one no credit.
    let stale = harness::sends::<RabbitMq>(&c.deliver(0, C0, RabbitMsg::Ack { tag: 3 }));
    assert!(deliveries(&stale).is_empty());
    assert!(c.show(0).contains("c0 reads from offset 3 (credit 0)"));
}

#[test]
fn the_writer_confirms_a_channels_repeated_write_without_writing_it_again() {
    let mut c = cluster();
    let writer = WriterId {
        node: Id::from(1),
        client: Id::from(PUBLISHER),
        channel: 1,
    };
    let write = RabbitMsg::StreamWrite {
        writer,
        seq: 1,
        msg: msg(0),
    };
    let out = c.deliver(0, 1, write.clone());
    settle(&mut c, 0, out, &[0, 1, 2]);
    assert_eq!(node(&c, 0).disk.stream_log.len(), 1);
    // The channel on n2 sends it again (`resend_all` after a leader change): `is_duplicate`.
    let again = c.deliver(0, 1, write);
    assert_eq!(node(&c, 0).disk.stream_log.len(), 1, "not appended twice");
    assert!(harness::sent_to::<RabbitMq>(&again, 1)
        .iter()
        .any(|m| matches!(
            m,
            RabbitMsg::StreamWritten { writer: w, seqs } if *w == writer && seqs == &vec![1]
        )));
    // Another channel's write of the same message is another writer id: written again.
    let other = RabbitMsg::StreamWrite {
        writer: WriterId {
            channel: 2,
            ..writer
        },
        seq: 1,
        msg: msg(0),
    };
    c.deliver(0, 1, other);
    assert_eq!(node(&c, 0).disk.stream_log.len(), 2);
}

#[test]
fn a_confirmed_message_survives_the_writers_crash_and_the_coordinator_elects_who_has_it() {
    let mut c = cluster();
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    let out = c.deliver(0, PUBLISHER, publish(1));
    let to_clients = settle(&mut c, 0, out, &[0, 1]);
    assert_eq!(confirms(&to_clients), vec![1], "confirmed with n1 and n2");
    // n1 crashes: n2 and n3 see its connection close. n2, the first node running, is the
    // coordinator: it stops both members in epoch 2 and starts the one with the latest tail.
    let down2 = c.deliver(1, 0, RabbitMsg::Disconnected);
    c.deliver(2, 0, RabbitMsg::Disconnected);
    settle(&mut c, 1, down2, &[1, 2]);
    let (n2, n3) = (node(&c, 1), node(&c, 2));
    assert!(
        n2.stream.is_writer(),
        "n2 holds the confirmed chunk: {}",
        c.show(1)
    );
    assert_eq!(
        n3.stream.member,
        Member::Replica {
            writer: Id::from(1)
        }
    );
    assert_eq!(n2.disk.stream_epoch.number, 2);
    assert_eq!(n3.disk.stream_log.len(), 1, "n3 caught up");
    assert_eq!(n2.stream.committed, 1);
    // The crashed writer restarts from its page cache and follows the new writer.
    let disk = harness_disk(&c, 0);
    c.restart(0, Some(disk));
    let tick = c.fire(1, RabbitTimer::StreamTick);
    settle(&mut c, 1, tick, &[0, 1, 2]);
    assert_eq!(
        node(&c, 0).stream.member,
        Member::Replica {
            writer: Id::from(1)
        }
    );
    // A consumer on the restarted node reads the confirmed message.
    c.deliver(0, C0, RabbitMsg::Open);
    let consume = RabbitMsg::StreamConsume {
        channel: 1,
        prefetch: 2,
        offset: OffsetSpec::First,
    };
    let read = harness::sends::<RabbitMq>(&c.deliver(0, C0, consume));
    assert_eq!(deliveries(&read), vec![(0, msg(1))]);
}

/// What node `i` last saved, as a process crash leaves it (page cache included).
fn harness_disk(c: &Cluster, i: usize) -> mqcheck_brokers::rabbitmq::RabbitDisk {
    mqcheck_brokers::rabbitmq::RabbitDisk::Server(node(c, i).disk.clone())
}

#[test]
fn a_writer_cut_off_from_the_majority_commits_nothing_and_its_channel_writes_again_to_the_new_one()
{
    let mut c = cluster();
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    // n1 is cut off: n2 and n3 stop hearing it; n2, the coordinator, elects itself.
    let election = c.fire(1, RabbitTimer::PeerSilent(Id::from(0)));
    c.fire(2, RabbitTimer::PeerSilent(Id::from(0)));
    settle(&mut c, 1, election, &[1, 2]);
    assert!(node(&c, 1).stream.is_writer(), "{}", c.show(1));
    assert_eq!(node(&c, 2).disk.stream_epoch.number, 2);
    // n1 still writes epoch 1 and takes a publish; its chunk goes nowhere for now.
    let out = c.deliver(0, PUBLISHER, publish(1));
    assert_eq!(node(&c, 0).disk.stream_log.len(), 1);
    // The partition heals: the members of epoch 2 fence n1, which stops writing; its channel
    // writes the publish again to n2 (`resend_all`), and only n2's chunk is confirmed.
    let to_clients = settle(&mut c, 0, out, &[0, 1, 2]);
    assert_eq!(confirms(&to_clients), vec![1], "{to_clients:?}");
    assert!(!node(&c, 0).stream.is_writer(), "{}", c.show(0));
    let log = &node(&c, 1).disk.stream_log;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].epoch.number, 2, "written by the epoch 2 writer");
    assert_eq!(node(&c, 1).stream.committed, 1);
}

const SWEEP: &str = "--broker rabbitmq --set queue.type=stream --set prefetch=10 --set x-stream-offset=first --messages 40 --rewind 10";

#[test]
fn replay_by_offset_is_consistent_under_crashes_partitions_and_pauses() {
    let json = held(
        &format!("{SWEEP} --faults crash,partition,pause --seeds 40"),
        &["at-least-once", "ordering", "replay"],
    );
    assert!(
        json["coverage"]["leader_elections"].as_u64().unwrap_or(0) > 0,
        "{json}"
    );
}

#[test]
fn a_power_loss_of_a_majority_loses_confirmed_records_streams_do_not_fsync() {
    let v = violated(
        &format!("{SWEEP} --faults power --seeds 40"),
        "at-least-once",
    );
    assert!(v["explanation"]
        .as_str()
        .is_some_and(|e| e.contains("acknowledged")));
}

#[test]
fn a_stream_consumer_reads_what_was_published_before_it_attached_at_first_not_at_next() {
    let args = "--broker rabbitmq --set queue.type=stream --set prefetch=10 --messages 40 --faults none --seeds 3 --consumer-delay-ms 2000 --rate 10";
    let (_, next) = sim(&format!("{args} --check at-least-once"));
    assert_eq!(next["invariants"]["at-least-once"]["held"], false, "{next}");
    held(
        &format!("{args} --set x-stream-offset=first"),
        &["at-least-once", "at-most-once"],
    );
}

#[test]
fn rabbitmq_refuses_what_a_stream_does_not_take() {
    let base = ["sim", "--broker", "rabbitmq", "--set", "queue.type=stream"];
    let with = |extra: &[&'static str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    bad_input(
        &with(&["--set", "version=3.3", "--set", "prefetch=10"]),
        "queue.type",
    );
    bad_input(&with(&[]), "prefetch");
    bad_input(
        &with(&["--set", "prefetch=10", "--set", "auto_ack=true"]),
        "auto_ack",
    );
    bad_input(
        &with(&["--set", "prefetch=10", "--set", "durable=false"]),
        "durable",
    );
    bad_input(
        &with(&[
            "--set",
            "prefetch=10",
            "--set",
            "x-single-active-consumer=true",
        ]),
        "x-single-active-consumer",
    );
    bad_input(
        &[
            "sim",
            "--broker",
            "rabbitmq",
            "--set",
            "x-stream-offset=first",
        ],
        "x-stream-offset",
    );
    bad_input(
        &[
            "sim",
            "--broker",
            "rabbitmq",
            "--set",
            "queue.type=quorum",
            "--rewind",
            "5",
        ],
        "rewind",
    );
}
