//! Configuration keys with each broker's own names, defaults and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The values a key accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// A whole number in `min..=max`.
    Int { min: u64, max: u64 },
    /// A whole number in `min..=max` that may be negative (ActiveMQ's `-1` for "no limit").
    Signed { min: i64, max: i64 },
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::OneOf(words) => f.write_str(&words.join(", ")),
            Allowed::Bool => f.write_str("true, false"),
            Allowed::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            Allowed::Signed { min, max } => write!(f, "an integer from {min} to {max}"),
        }
    }
}

/// One configuration key.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub allowed: Allowed,
    pub doc: &'static str,
}

impl Key {
    pub const fn new(
        name: &'static str,
        default: &'static str,
        allowed: Allowed,
        doc: &'static str,
    ) -> Self {
        Key {
            name,
            default,
            allowed,
            doc,
        }
    }

    fn check(&self, value: &str) -> Result<(), ConfigError> {
        let ok = match &self.allowed {
            Allowed::OneOf(words) => words.contains(&value),
            Allowed::Bool => value == "true" || value == "false",
            Allowed::Int { min, max } => {
                plain_integer(value)
                    && value
                        .parse::<u64>()
                        .is_ok_and(|v| (*min..=*max).contains(&v))
            }
            Allowed::Signed { min, max } => {
                value
                    .strip_prefix('-')
                    .map_or(plain_integer(value), |v| plain_integer(v) && v != "0")
                    && value
                        .parse::<i64>()
                        .is_ok_and(|v| (*min..=*max).contains(&v))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                self.name,
                format!(
                    "invalid value '{value}' for {} (allowed: {})",
                    self.name, self.allowed
                ),
            ))
        }
    }
}

/// Is `s` an integer written plainly: digits only, no sign, no leading zero, no space? Values and
/// numeric flags take only this form, so what a replay command prints is what was typed.
pub fn plain_integer(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// A rejected configuration: the key at fault and one line saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Effective values of every key, and which ones the user set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    values: BTreeMap<String, String>,
    explicit: BTreeSet<String>,
}

impl Config {
    /// Applies `KEY=VALUE` settings over the defaults of `keys`, validating each.
    pub fn parse(broker: &str, keys: &[Key], sets: &[String]) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<String, String> = keys
            .iter()
            .map(|k| (k.name.to_string(), k.default.to_string()))
            .collect();
        let mut explicit = BTreeSet::new();
        for set in sets {
            let Some((name, value)) = set.split_once('=') else {
                return Err(ConfigError::new(
                    set.clone(),
                    format!("--set takes KEY=VALUE, got '{set}'"),
                ));
            };
            if name.trim() != name || value.trim() != value {
                return Err(ConfigError::new(
                    name.trim(),
                    format!("--set '{set}' has spaces around its key or value (allowed: KEY=VALUE, no spaces)"),
                ));
            }
            let Some(key) = keys.iter().find(|k| k.name == name) else {
                let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
                return Err(ConfigError::new(
                    name,
                    format!(
                        "unknown config key '{name}' for {broker} (allowed: {})",
                        names.join(", ")
                    ),
                ));
            };
            key.check(value)?;
            values.insert(name.to_string(), value.to_string());
            explicit.insert(name.to_string());
        }
        Ok(Config { values, explicit })
    }

    /// The effective value of `key`. Panics on a key the broker does not declare: that is a bug in
    /// the model, not bad input.
    pub fn str(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("model reads undeclared key {key}"))
    }

    pub fn bool(&self, key: &str) -> bool {
        self.str(key) == "true"
    }

    pub fn int(&self, key: &str) -> u64 {
        self.str(key)
            .parse()
            .unwrap_or_else(|_| panic!("key {key} is not an integer"))
    }

    /// The effective value of a key declared [`Allowed::Signed`].
    pub fn signed(&self, key: &str) -> i64 {
        self.str(key)
            .parse()
            .unwrap_or_else(|_| panic!("key {key} is not an integer"))
    }

    pub fn is_set(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    /// The same configuration with `key` adjusted the way the broker adjusts it (not a user
    /// setting: replay commands do not repeat it).
    pub fn adjusted(mut self, key: &str, value: impl Into<String>) -> Config {
        self.values.insert(key.to_string(), value.into());
        self
    }

    /// Every key with its effective value, in key order.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The settings the user made, as `KEY=VALUE`, in key order (for replay commands).
    pub fn explicit(&self) -> Vec<String> {
        self.explicit
            .iter()
            .map(|k| format!("{k}={}", self.values[k]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[Key] = &[
        Key::new("acks", "all", Allowed::OneOf(&["0", "1", "all"]), ""),
        Key::new("retries", "5", Allowed::Int { min: 0, max: 10 }, ""),
        Key::new("flag", "false", Allowed::Bool, ""),
        Key::new("limit", "-1", Allowed::Signed { min: -1, max: 9 }, ""),
    ];

    #[test]
    fn defaults_and_settings() {
        let c = Config::parse("x", KEYS, &["retries=3".into()]).unwrap();
        assert_eq!(c.str("acks"), "all");
        assert_eq!(c.int("retries"), 3);
        assert!(!c.bool("flag"));
        assert_eq!(c.explicit(), vec!["retries=3".to_string()]);
        assert_eq!(c.signed("limit"), -1);
    }

    #[test]
    fn rejections_name_the_key_and_the_allowed_values() {
        let e = Config::parse("x", KEYS, &["acks=2".into()]).unwrap_err();
        assert_eq!(e.key, "acks");
        assert!(e.message.contains("0, 1, all"), "{e}");
        let e = Config::parse("x", KEYS, &["nope=1".into()]).unwrap_err();
        assert_eq!(e.key, "nope");
        assert!(e.message.contains("acks, retries, flag, limit"), "{e}");
        let e = Config::parse("x", KEYS, &["limit=-2".into()]).unwrap_err();
        assert!(e.message.contains("-1 to 9"), "{e}");
        let e = Config::parse("x", KEYS, &["retries=11".into()]).unwrap_err();
        assert!(e.message.contains("0 to 10"), "{e}");
        let e = Config::parse("x", KEYS, &["flag=yes".into()]).unwrap_err();
        assert!(e.message.contains("true, false"), "{e}");
        let e = Config::parse("x", KEYS, &["acks".into()]).unwrap_err();
        assert!(e.message.contains("KEY=VALUE"), "{e}");
    }
}
