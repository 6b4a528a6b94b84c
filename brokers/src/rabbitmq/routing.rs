//! Exchanges and bindings: which queues a published message reaches.
//!
//! An exchange routes by its type: `direct` (the binding key equals the routing key), `topic`
//! (dot-separated words; `*` in a binding key matches exactly one word, `#` zero or more),
//! `fanout` (every bound queue), `headers` (the message headers against the binding's arguments,
//! `x-match=all` needing every pair, `x-match=any` at least one). A message no binding matches is
//! handed to the exchange's alternate exchange, if it has one; otherwise it is unroutable, and a
//! `mandatory` publish comes back with `basic.return`.
//!
//! Sources: RabbitMQ "AMQP 0-9-1 Model Explained" (exchange types), "Alternate Exchanges",
//! "Publishers" (unroutable messages, `mandatory`), and the tutorials on topic exchanges.

use std::collections::BTreeSet;

/// A queue, by its index in the deployment.
pub type QueueIndex = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExchangeType {
    Direct,
    Topic,
    Fanout,
    Headers,
}

/// A headers binding's `x-match` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XMatch {
    All,
    Any,
}

/// Message headers, or a headers binding's arguments.
pub type Headers = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    pub queue: QueueIndex,
    /// The binding key (`direct`, `topic`); ignored by `fanout` and `headers`.
    pub key: String,
    /// The binding arguments of a `headers` exchange.
    pub arguments: Headers,
    pub x_match: XMatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exchange {
    pub kind: ExchangeType,
    pub bindings: Vec<Binding>,
    /// The `alternate-exchange` that receives what no binding matches.
    pub alternate: Option<Box<Exchange>>,
}

/// Where a published message goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routed {
    pub queues: BTreeSet<QueueIndex>,
    /// No queue at all, alternate exchange included: a `mandatory` publish is returned.
    pub unroutable: bool,
}

impl Exchange {
    /// The queues whose bindings match, or those of the alternate exchange when none does.
    pub fn route(&self, routing_key: &str, headers: &[(String, String)]) -> Routed {
        let queues: BTreeSet<QueueIndex> = self
            .bindings
            .iter()
            .filter(|b| self.matches(b, routing_key, headers))
            .map(|b| b.queue)
            .collect();
        if queues.is_empty() {
            if let Some(ae) = &self.alternate {
                return ae.route(routing_key, headers);
            }
        }
        Routed {
            unroutable: queues.is_empty(),
            queues,
        }
    }

    fn matches(&self, b: &Binding, routing_key: &str, headers: &[(String, String)]) -> bool {
        match self.kind {
            ExchangeType::Direct => b.key == routing_key,
            ExchangeType::Topic => topic_matches(&b.key, routing_key),
            ExchangeType::Fanout => true,
            ExchangeType::Headers => headers_match(b.x_match, &b.arguments, headers),
        }
    }
}

/// Topic matching over words: `*` is exactly one word, `#` zero or more. Dynamic programming
/// over (pattern word, key word), so patterns with many `#` stay linear in each dimension.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    // m[j] = the first i pattern words match the first j key words.
    let mut m = vec![false; k.len() + 1];
    m[0] = true;
    for word in &p {
        let mut next = vec![false; k.len() + 1];
        for j in 0..=k.len() {
            next[j] = match *word {
                "#" => m[j] || (j > 0 && next[j - 1]),
                "*" => j > 0 && m[j - 1],
                w => j > 0 && m[j - 1] && k[j - 1] == w,
            };
        }
        m = next;
    }
    m[k.len()]
}

/// `x-match=all`: every binding argument is a header with that value; `any`: at least one is.
/// Arguments starting with `x-` are not matched (RabbitMQ skips them).
pub fn headers_match(
    x_match: XMatch,
    arguments: &[(String, String)],
    headers: &[(String, String)],
) -> bool {
    let mut pairs = arguments.iter().filter(|(k, _)| !k.starts_with("x-"));
    let present = |(k, v): &(String, String)| headers.iter().any(|(hk, hv)| hk == k && hv == v);
    match x_match {
        XMatch::All => pairs.all(present),
        XMatch::Any => pairs.any(present),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a plain backtracking reading of the topic rules.
    fn reference_topic(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(&"#"), _) => (0..=k.len()).any(|skip| reference_topic(&p[1..], &k[skip..])),
            (Some(_), None) => false,
            (Some(&"*"), Some(_)) => reference_topic(&p[1..], &k[1..]),
            (Some(w), Some(kw)) => w == kw && reference_topic(&p[1..], &k[1..]),
        }
    }

    /// The reference for headers: counting matched pairs.
    fn reference_headers(
        x: XMatch,
        args: &[(String, String)],
        headers: &[(String, String)],
    ) -> bool {
        let args: Vec<_> = args.iter().filter(|(k, _)| !k.starts_with("x-")).collect();
        let hits = args.iter().filter(|a| headers.contains(a)).count();
        match x {
            XMatch::All => hits == args.len(),
            XMatch::Any => hits > 0,
        }
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("c".to_string())
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop::collection::vec(word(), 1..5).prop_map(|w| w.join("."))
    }

    fn pattern() -> impl Strategy<Value = String> {
        let w = prop_oneof![word(), Just("*".to_string()), Just("#".to_string())];
        prop::collection::vec(w, 1..5).prop_map(|w| w.join("."))
    }

    fn pairs() -> impl Strategy<Value = Headers> {
        let k = prop_oneof![Just("kind"), Just("region"), Just("x-note")];
        let v = prop_oneof![Just("1"), Just("2")];
        prop::collection::vec((k, v), 0..4).prop_map(|ps| {
            ps.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }

    fn kind() -> impl Strategy<Value = ExchangeType> {
        prop_oneof![
            Just(ExchangeType::Direct),
            Just(ExchangeType::Topic),
            Just(ExchangeType::Fanout),
            Just(ExchangeType::Headers)
        ]
    }

    fn binding() -> impl Strategy<Value = Binding> {
        let x = prop_oneof![Just(XMatch::All), Just(XMatch::Any)];
        (0u32..4, pattern(), pairs(), x).prop_map(|(queue, key, arguments, x_match)| Binding {
            queue,
            key,
            arguments,
            x_match,
        })
    }

    fn reference_match(kind: ExchangeType, b: &Binding, key: &str, headers: &Headers) -> bool {
        match kind {
            ExchangeType::Direct => b.key == key,
            ExchangeType::Topic => {
                let p: Vec<&str> = b.key.split('.').collect();
                let k: Vec<&str> = key.split('.').collect();
                reference_topic(&p, &k)
            }
            ExchangeType::Fanout => true,
            ExchangeType::Headers => reference_headers(b.x_match, &b.arguments, headers),
        }
    }

    proptest! {
        #[test]
        fn topic_matching_agrees_with_the_reference(p in pattern(), k in key()) {
            let pw: Vec<&str> = p.split('.').collect();
            let kw: Vec<&str> = k.split('.').collect();
            prop_assert_eq!(topic_matches(&p, &k), reference_topic(&pw, &kw), "{} vs {}", p, k);
        }

        /// Every published message reaches exactly the queues whose bindings match, else the
        /// alternate exchange's; unroutable exactly when that is no queue.
        #[test]
        fn a_message_reaches_exactly_the_matching_queues(
            kind in kind(),
            bindings in prop::collection::vec(binding(), 0..5),
            ae in prop::option::of((kind(), prop::collection::vec(binding(), 0..3))),
            k in key(),
            headers in pairs(),
        ) {
            let alternate = ae.clone().map(|(kind, bindings)| Box::new(Exchange { kind, bindings, alternate: None }));
            let x = Exchange { kind, bindings: bindings.clone(), alternate };
            let routed = x.route(&k, &headers);
            let mut expected: BTreeSet<QueueIndex> = bindings
                .iter()
                .filter(|b| reference_match(kind, b, &k, &headers))
                .map(|b| b.queue)
                .collect();
            if expected.is_empty() {
                if let Some((akind, abindings)) = &ae {
                    expected = abindings
                        .iter()
                        .filter(|b| reference_match(*akind, b, &k, &headers))
                        .map(|b| b.queue)
                        .collect();
                }
            }
            prop_assert_eq!(routed.unroutable, expected.is_empty());
            prop_assert_eq!(routed.queues, expected);
        }
    }

    #[test]
    fn topic_examples_from_the_tutorial() {
        assert!(topic_matches("*.orange.*", "quick.orange.rabbit"));
        assert!(!topic_matches("*.orange.*", "quick.orange.male.rabbit"));
        assert!(topic_matches("lazy.#", "lazy"));
        assert!(topic_matches("lazy.#", "lazy.orange.male.rabbit"));
        assert!(!topic_matches("*.*.rabbit", "lazy.rabbit"));
        assert!(topic_matches("#", "anything.at.all"));
    }

    #[test]
    fn headers_any_needs_one_pair_and_all_needs_every_pair() {
        let h = |ps: &[(&str, &str)]| -> Headers {
            ps.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let args = h(&[("format", "pdf"), ("type", "report"), ("x-match", "all")]);
        assert!(headers_match(
            XMatch::All,
            &args,
            &h(&[("format", "pdf"), ("type", "report")])
        ));
        assert!(!headers_match(XMatch::All, &args, &h(&[("format", "pdf")])));
        assert!(headers_match(XMatch::Any, &args, &h(&[("format", "pdf")])));
        assert!(!headers_match(XMatch::Any, &args, &h(&[("format", "zip")])));
    }
}
