//! Kafka as a reader sees it: messages in a trace, node states in the Stateright Explorer.

use super::{KafkaMsg, KafkaState, ReplicaRole};
use crate::{pairs, Names};

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
            | KafkaMsg::EndTxn { .. }
            | KafkaMsg::WriteTxnMarkers { .. }
    )
}

/// A node's state in a few words, for the Stateright Explorer: each replica's role, log (as
/// `epoch:message` records), high watermark and ISR; the controller's partition records and
/// committed offsets; a client's progress.
pub(super) fn show(state: &KafkaState, names: Names<'_>) -> String {
    match state {
        KafkaState::Controller(c) => {
            let parts: Vec<String> = c
                .partitions
                .iter()
                .map(|p| {
                    format!(
                        "p{} leader={} epoch={} isr={}",
                        p.partition,
                        p.leader.map_or("none", |l| names.of(l)),
                        p.leader_epoch,
                        names.list(&p.isr)
                    )
                })
                .collect();
            format!(
                "controller: alive={}; {}; committed offsets [{}]",
                names.list(&c.alive),
                parts.join("; "),
                pairs(c.offsets.iter().map(|(p, (o, e))| (format!("p{p}"), format!("{o} (epoch {e})"))))
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
                            "LEADER epoch {} isr={}",
                            l.epoch,
                            names.list(&l.isr)
                        ),
                        ReplicaRole::Follower { leader, .. } => {
                            format!("follower of {}", names.of(*leader))
                        }
                    };
                    let log: Vec<String> = r
                        .log
                        .records()
                        .map(|rec| match rec.control {
                            Some(result) => {
                                format!("{}:{result:?}(p{})", rec.epoch, rec.msg.producer)
                            }
                            None => format!("{}:{}", rec.epoch, rec.msg),
                        })
                        .collect();
                    let lso = r.log.last_stable_offset(r.high_watermark);
                    let lso = if r.log.records().any(|rec| rec.transactional) {
                        format!(" lso={lso}")
                    } else {
                        String::new()
                    };
                    format!(
                        "p{} {role} log=[{}] hw={}{lso} flushed={}",
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
            "consumer: generation {}, positions [{}], committed [{}], {} observations",
            c.generation.map_or("none".into(), |g| g.to_string()),
            pairs(c.position.iter().map(|(p, o)| (format!("p{p}"), o))),
            pairs(c.committed.iter().map(|(p, o)| (format!("p{p}"), o))),
            c.app.len()
        ),
    }
}

