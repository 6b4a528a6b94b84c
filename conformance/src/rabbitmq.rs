//! Real RabbitMQ: one node from the Debian package, or a cluster of three
//! ([`BrokerProcess::start_cluster`]), a publisher and a consumer through lapin that mirror the
//! model's clients (`brokers/src/rabbitmq/client.rs`). Both start on the first node, which
//! declares the queue and so leads a quorum queue, and move to the next node when a connection
//! attempt fails.
//!
//! - The publisher opens a connection and a channel (channels are counted from 1, one per
//!   connection: the ordering scope), declares the durable queue `mqcheck` (`x-queue-type`
//!   from `queue.type`), turns on `confirm.select` when `publisher.confirms`, and publishes
//!   message `seq` as `p0:seq:channel` at the scenario's pace, `delivery_mode` as configured. It
//!   records the send, then the confirm (ack), or a failure: `basic.nack`, the connection
//!   closing before the confirm, or no confirm within `publisher.confirm_timeout`. With
//!   `publisher.retry` it republishes on a fresh connection until the message is confirmed,
//!   without recording a second send. Without confirms, `basic.publish` returning is the
//!   acknowledgement. While its connection is down it does not send, as the model's publisher.
//! - The consumer consumes with `basic.qos(prefetch)` and `no_ack = auto_ack`, hands each
//!   delivery to its application (recorded, with the redelivered flag, the channel it was
//!   published on as its scope and its own channel as its session), spends `handler_ms` on it
//!   and then acknowledges (manual acks). Its connection lost, it reconnects on a new channel.

use crate::process::{BrokerProcess, HarnessError, Server};
use crate::scenario::{RealRun, RealSpec};
use crate::{nap, play, Clients, Control, Recorder, State};
use futures_lite::{future, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use mqcheck_invariants::{MsgId, Op};
use std::time::{Duration, Instant};

const QUEUE: &str = "mqcheck";
/// How long a connection attempt may take (a paused broker accepts TCP and says nothing).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the drain waits for the history to settle once the faults are over.
const DRAIN: Duration = Duration::from_secs(30);
/// How long a settled history must stay settled before the run ends.
const QUIET: Duration = Duration::from_secs(2);

/// The model's settings that the real clients honour.
#[derive(Clone, Debug)]
struct Settings {
    quorum: bool,
    auto_ack: bool,
    persistent: bool,
    confirms: bool,
    retry: bool,
    confirm_timeout: Duration,
    prefetch: u16,
    messages: u32,
    pace: Duration,
    handler_ms: u64,
}

impl Settings {
    fn new(spec: &RealSpec) -> Self {
        let c = &spec.config;
        Settings {
            quorum: c.str("queue.type") == "quorum",
            auto_ack: c.bool("auto_ack"),
            persistent: c.int("delivery_mode") == 2,
            confirms: c.bool("publisher.confirms"),
            retry: c.bool("publisher.retry"),
            confirm_timeout: Duration::from_millis(c.int("publisher.confirm_timeout")),
            prefetch: c.int("prefetch") as u16,
            messages: spec.messages,
            pace: Duration::from_millis(1000 / u64::from(spec.rate.max(1))),
            handler_ms: u64::from(spec.handler_ms),
        }
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        args
    }
}

async fn timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        async_io::Timer::after(d).await;
        None
    })
    .await
}

/// A connection with one channel and the queue declared, to the node `attempt` picks among the
/// cluster's nodes: a client starts on the first node and moves on to the next when a
/// connection attempt fails, as a client given the cluster's addresses does.
async fn open(uris: &[String], attempt: usize, s: &Settings) -> Option<(Connection, Channel)> {
    let uri = &uris[attempt % uris.len()];
    let opened = timeout(CONNECT_TIMEOUT, async {
        let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .queue_declare(
                QUEUE,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                s.queue_args(),
            )
            .await?;
        Ok::<_, lapin::Error>((conn, channel))
    })
    .await;
    match opened {
        Some(Ok(c)) => Some(c),
        _ => None,
    }
}

async fn close(conn: Connection) {
    let _ = timeout(Duration::from_secs(2), conn.close(200, "bye")).await;
}

fn publisher(uris: Vec<String>, s: Settings, rec: Recorder, ctl: Control) {
    future::block_on(async move {
        let mut channel_no: u32 = 0;
        let mut attempt = 0;
        let mut link: Option<(Connection, Channel)> = None;
        for seq in 0..s.messages {
            nap(&ctl, s.pace.as_millis() as u64);
            let msg = MsgId { producer: 0, seq };
            let mut sent = false;
            loop {
                if ctl.get() == State::Stop {
                    return;
                }
                if link.is_none() {
                    link = open(&uris, attempt, &s).await;
                    let Some((_, ch)) = &link else {
                        attempt += 1;
                        async_io::Timer::after(Duration::from_millis(200)).await;
                        continue;
                    };
                    if s.confirms
                        && ch
                            .confirm_select(ConfirmSelectOptions::default())
                            .await
                            .is_err()
                    {
                        link = None;
                        continue;
                    }
                    channel_no += 1;
                }
                let ch = &link.as_ref().expect("connected").1;
                if !sent {
                    rec.record(
                        "p0",
                        Op::Send {
                            msg,
                            scope: channel_no,
                            audience: vec![0],
                            key: None,
                        },
                    );
                    sent = true;
                }
                let body = format!("p0:{seq}:{channel_no}");
                let props = BasicProperties::default()
                    .with_delivery_mode(if s.persistent { 2 } else { 1 })
                    .with_message_id(msg.to_string().as_str().into());
                let published = ch
                    .basic_publish(
                        "",
                        QUEUE,
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        props,
                    )
                    .await;
                let failure = match published {
                    Err(_) => "connection closed before the confirm",
                    Ok(_) if !s.confirms => {
                        rec.record("p0", Op::Ack { msg });
                        break;
                    }
                    Ok(confirm) => match timeout(s.confirm_timeout, confirm).await {
                        Some(Ok(Confirmation::Ack(_))) => {
                            rec.record("p0", Op::Ack { msg });
                            break;
                        }
                        Some(Ok(_)) => "basic.nack",
                        Some(Err(_)) => "connection closed before the confirm",
                        None => "no confirm within publisher.confirm_timeout",
                    },
                };
                // The channel is in doubt: a fresh connection for what comes next.
                if let Some((conn, _)) = link.take() {
                    close(conn).await;
                }
                if !s.retry {
                    rec.record(
                        "p0",
                        Op::Fail {
                            msg,
                            reason: failure.into(),
                        },
                    );
                    break;
                }
            }
        }
        if let Some((conn, _)) = link.take() {
            close(conn).await;
        }
    });
}

/// `p0:seq:channel` back into the message and the channel it was published on.
fn parse(body: &[u8]) -> Option<(MsgId, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut parts = text.split(':');
    let producer = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let channel = parts.next()?.parse().ok()?;
    Some((MsgId { producer, seq }, channel))
}

fn consumer(uris: Vec<String>, s: Settings, rec: Recorder, ctl: Control) {
    future::block_on(async move {
        let mut session: u64 = 0;
        let mut attempt = 0;
        'connect: loop {
            if ctl.wait_until_up() == State::Stop {
                return;
            }
            let Some((conn, ch)) = open(&uris, attempt, &s).await else {
                attempt += 1;
                async_io::Timer::after(Duration::from_millis(200)).await;
                continue;
            };
            session += 1;
            if s.prefetch > 0
                && ch
                    .basic_qos(s.prefetch, BasicQosOptions::default())
                    .await
                    .is_err()
            {
                close(conn).await;
                continue;
            }
            let Ok(mut deliveries) = ch
                .basic_consume(
                    QUEUE,
                    "c0",
                    BasicConsumeOptions {
                        no_ack: s.auto_ack,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            else {
                close(conn).await;
                continue;
            };
            loop {
                match ctl.wait_while_paused() {
                    State::Up => {}
                    State::Crashed => {
                        // What the consumer held dies with it; the broker requeues what it
                        // had not acknowledged once the connection is gone.
                        drop(deliveries);
                        close(conn).await;
                        continue 'connect;
                    }
                    State::Stop | State::Paused => {
                        close(conn).await;
                        return;
                    }
                }
                let next = timeout(Duration::from_millis(100), deliveries.next()).await;
                let delivery = match next {
                    None => continue,
                    Some(Some(Ok(d))) => d,
                    Some(_) => {
                        close(conn).await;
                        continue 'connect;
                    }
                };
                let Some((msg, published_on)) = parse(&delivery.data) else {
                    continue;
                };
                rec.record(
                    "c0",
                    Op::Deliver {
                        msg,
                        group: 0,
                        consumer: 0,
                        scope: published_on,
                        position: None,
                        session,
                        redelivered: Some(delivery.redelivered),
                    },
                );
                nap(&ctl, s.handler_ms);
                if !s.auto_ack
                    && (ctl.get() == State::Crashed
                        || delivery.ack(BasicAckOptions::default()).await.is_err())
                {
                    close(conn).await;
                    continue 'connect;
                }
            }
        }
    });
}

/// Runs the spec against a fresh RabbitMQ node, or a cluster of `nodes` nodes.
pub fn run(spec: &RealSpec) -> Result<RealRun, HarnessError> {
    let started = Instant::now();
    let s = Settings::new(spec);
    let mut nodes = if spec.plan.needs_network() && spec.plan.servers > 1 {
        BrokerProcess::start_cluster_isolated(Server::RabbitMq, spec.plan.servers)?
    } else if spec.plan.needs_network() {
        vec![BrokerProcess::start_isolated(Server::RabbitMq)?]
    } else {
        BrokerProcess::start_cluster(Server::RabbitMq, spec.plan.servers.max(1))?
    };
    let uris: Vec<String> = nodes
        .iter()
        .map(|n| format!("amqp://guest:guest@{}/%2f", n.address()))
        .collect();
    let rec = Recorder::default();
    let (pub_ctl, con_ctl) = (Control::default(), Control::default());
    let producer = {
        let (uris, s, rec, ctl) = (uris.clone(), s.clone(), rec.clone(), pub_ctl.clone());
        std::thread::spawn(move || publisher(uris, s, rec, ctl))
    };
    let consumer = {
        let (uris, s, rec, ctl) = (uris, s, rec.clone(), con_ctl.clone());
        std::thread::spawn(move || consumer(uris, s, rec, ctl))
    };
    let clients = Clients {
        producer: (producer, pub_ctl),
        consumer: (consumer, con_ctl),
    };
    play(
        started,
        &spec.plan,
        &mut nodes,
        &rec,
        clients,
        (DRAIN, QUIET),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_as_its_message_and_channel() {
        assert_eq!(
            parse(b"p0:17:2"),
            Some((
                MsgId {
                    producer: 0,
                    seq: 17
                },
                2
            ))
        );
        assert_eq!(parse(b"hello"), None);
    }
}
