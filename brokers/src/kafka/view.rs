//! Kafka as a reader sees it: messages in a trace, node states in the Stateright Explorer.

use super::{KafkaMsg, KafkaState, ReplicaRole};

/// A message in a trace, in Kafka's vocabulary; `None` for chatter.
pub(super) fn describe(msg: &KafkaMsg) -> Option<String> {
    match msg {
        KafkaMsg::BrokerHeartbeat
        | KafkaMsg::Heartbeat { .. }
        | KafkaMsg::HeartbeatResponse { error: None } => None,
        KafkaMsg::FetchResponse { records, error, .. }
            if records.is_empty() && error.is_none() =>
        {
            None
        }
        KafkaMsg::BrokerHeartbeatResponse(_)
        | KafkaMsg::Metadata
        | KafkaMsg::MetadataResponse(_) => None,
        m => Some(m.to_string()),
    }
}

/// Elections, ISR changes, registrations and the epoch answers a follower truncates by.
pub(super) fn notable(msg: &KafkaMsg) -> bool {
    matches!(
        msg,
        KafkaMsg::PartitionChange(_)
            | KafkaMsg::AlterPartition { .. }
            | KafkaMsg::OffsetsForLeaderEpochResponse { .. }
            | KafkaMsg::BrokerRegistration { .. }
    )
}

/// A node's state in a few words, for the Stateright Explorer: each replica's role, log (as
/// `epoch:message` records), high watermark and ISR; the controller's partition records and
/// committed offsets; a client's progress.
pub(super) fn show(state: &KafkaState) -> String {
    match state {
        KafkaState::Controller(c) => {
            let parts: Vec<String> = c
                .partitions
                .iter()
                .map(|p| {
                    format!(
                        "p{} leader={} epoch={} isr={:?}",
                        p.partition,
                        p.leader
                            .map_or("none".into(), |l| format!("{}", usize::from(l))),
                        p.leader_epoch,
                        p.isr.iter().map(|i| usize::from(*i)).collect::<Vec<_>>()
                    )
                })
                .collect();
            format!(
                "controller: alive={:?}; {}; committed offsets {:?}",
                c.alive.iter().map(|i| usize::from(*i)).collect::<Vec<_>>(),
                parts.join("; "),
                c.offsets
            )
        }
        KafkaState::Broker(b) => {
            let parts: Vec<String> = b
                .replicas
                .iter()
                .map(|r| {
                    let role = match &r.role {
                        ReplicaRole::Idle => "idle".to_string(),
                        ReplicaRole::Leader(l) => format!(
                            "LEADER epoch {} isr={:?}",
                            l.epoch,
                            l.isr.iter().map(|i| usize::from(*i)).collect::<Vec<_>>()
                        ),
                        ReplicaRole::Follower { leader, .. } => {
                            format!("follower of {}", usize::from(*leader))
                        }
                    };
                    let log: Vec<String> = r
                        .log
                        .records()
                        .map(|rec| format!("{}:{}", rec.epoch, rec.msg))
                        .collect();
                    format!(
                        "p{} {role} log=[{}] hw={} flushed={}",
                        r.partition,
                        log.join(" "),
                        r.high_watermark,
                        r.log.flushed
                    )
                })
                .collect();
            format!(
                "broker (incarnation {}): {}",
                b.incarnation,
                parts.join("; ")
            )
        }
        KafkaState::Producer(p) => format!("producer: {} observations", p.app.len()),
        KafkaState::Consumer(c) => format!(
            "consumer: generation {:?}, positions {:?}, committed {:?}, {} observations",
            c.generation,
            c.position,
            c.committed,
            c.app.len()
        ),
    }
}
