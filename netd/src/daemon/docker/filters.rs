//! Docker's list and prune filters: the `filters` query parameter, and
//! prune's `until` in Go durations, RFC 3339 or Unix time.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::resource::{driver_name, scope};
use crate::model::Network;
use crate::ops::NetworkDetail;

/// Docker's `filters` query parameter: `{"key": {"value": true}}`, or the
/// older `{"key": ["value"]}`.
#[derive(Debug, Default, Clone)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> Result<Filters, String> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| format!("invalid filters: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("invalid filters: expected a JSON object")?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                Value::Object(m) => {
                    let mut l = Vec::new();
                    for (s, b) in m {
                        match b.as_bool() {
                            Some(true) => l.push(s.clone()),
                            Some(false) => {}
                            None => {
                                return Err(format!(
                                    "invalid filter {k:?}: {s:?} is not true or false"
                                ));
                            }
                        }
                    }
                    l
                }
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("invalid filter {k:?}: {x} is not a string"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("invalid filter {k:?}")),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    /// Refuse keys the route does not know, naming them.
    pub fn check(&self, known: &[&str]) -> Result<(), String> {
        for k in self.0.keys() {
            if !known.contains(&k.as_str()) {
                return Err(format!("invalid filter '{k}'"));
            }
        }
        Ok(())
    }

    /// Every value of `key` must match (AND across keys, OR within a key).
    fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) if vals.is_empty() => true,
            Some(vals) => vals.iter().any(|v| f(v)),
        }
    }

    fn labels_match(&self, n: &Network) -> bool {
        self.any("label", |l| match l.split_once('=') {
            Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
            None => n.labels.contains_key(l),
        })
    }

    /// The network list filters, checked once: an unknown key, a `name` or
    /// `id` that is not a regular expression, a `type` or `dangling` value
    /// Docker does not take are errors naming them (Docker's messages).
    pub fn networks(&self) -> Result<NetworkFilter, String> {
        self.check(NETWORK_FILTERS)?;
        let regexes = |key: &str| -> Result<Vec<Regex>, String> {
            self.0
                .get(key)
                .into_iter()
                .flatten()
                .map(|v| {
                    // Bounded: the pattern comes from a query string. The
                    // regex crate matches in linear time, so only its
                    // compiled size needs a limit.
                    RegexBuilder::new(v)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("invalid filter '{key}={v}': {e}"))
                })
                .collect()
        };
        let (name, id) = (regexes("name")?, regexes("id")?);
        for v in self.0.get("type").into_iter().flatten() {
            if !matches!(v.as_str(), "custom" | "builtin") {
                return Err(format!("invalid filter: 'type'='{v}'"));
            }
        }
        for v in self.0.get("dangling").into_iter().flatten() {
            if !matches!(v.as_str(), "true" | "1" | "false" | "0") {
                return Err(format!("invalid filter 'dangling={v}'"));
            }
        }
        Ok(NetworkFilter {
            filters: self.clone(),
            name,
            id,
        })
    }
}

/// What `GET /networks` filters on.
pub const NETWORK_FILTERS: &[&str] =
    &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// Validated network list filters: `name` and `id` are regular
/// expressions matched anywhere in the value, as Docker's `filters.Match`
/// (`^web$` for an exact name); the others compare whole values.
#[derive(Debug, Clone)]
pub struct NetworkFilter {
    filters: Filters,
    name: Vec<Regex>,
    id: Vec<Regex>,
}

impl NetworkFilter {
    pub fn matches(&self, d: &NetworkDetail) -> bool {
        let n = &d.network;
        let f = &self.filters;
        let any_re = |res: &[Regex], s: &str| res.is_empty() || res.iter().any(|r| r.is_match(s));
        any_re(&self.name, n.name.as_str())
            && any_re(&self.id, n.id.as_str())
            && f.any("driver", |s| s == driver_name(n))
            && f.any("scope", |s| s == scope(n))
            && f.any("type", |s| match s {
                "custom" => !n.is_predefined(),
                _ => n.is_predefined(),
            })
            && f.any("dangling", |s| match s {
                "true" | "1" => d.endpoints.is_empty() && !n.is_predefined(),
                _ => !d.endpoints.is_empty() || n.is_predefined(),
            })
            && f.labels_match(n)
    }
}

impl Filters {
    /// The `prune` filters (`label`, `label!`, `until`), checked once before
    /// anything is removed: an unknown key or an `until` that is not a time
    /// is an error naming it, never a filter that matches nothing or all.
    pub fn prune(&self, now: std::time::SystemTime) -> Result<PruneFilter, String> {
        self.check(&["label", "label!", "until"])?;
        let until = match self.0.get("until").map(Vec::as_slice) {
            None | Some([]) => None,
            Some([u]) => Some(until_nanos(u, now)?),
            Some(_) => return Err("more than one until filter specified".into()),
        };
        Ok(PruneFilter {
            filters: self.clone(),
            until,
        })
    }
}

/// What `GET /events` passes on: Docker's `type`, `event`, `network` and
/// `container` filters, where the replay of kept events starts and when
/// the stream ends.
#[derive(Debug, Clone)]
pub struct EventFilter {
    filters: Filters,
    /// Replay the kept events from this time (Unix nanoseconds, inclusive).
    pub since: Option<i128>,
    /// End the stream at this time (Unix nanoseconds): later events are
    /// not sent, and one already past ends it after the replay.
    pub until: Option<i128>,
}

impl EventFilter {
    pub fn matches(&self, e: &crate::ops::Event) -> bool {
        let f = &self.filters;
        let actor = |s: &str| s == e.id || s == e.name || (s.len() >= 12 && e.id.starts_with(s));
        // Docker calls a sandbox's events `container` ones.
        let kind = if e.kind == "sandbox" {
            "container"
        } else {
            e.kind
        };
        f.any("type", |s| s == e.kind || s == kind)
            && f.any("event", |s| s == e.action)
            && f.any("network", |s| {
                (e.kind == "network" && actor(s))
                    || e.attributes.get("network").is_some_and(|n| n == s)
            })
            && f.any("container", |s| {
                (e.kind == "sandbox" && actor(s))
                    || e.attributes.get("sandbox").is_some_and(|c| c == s)
            })
    }

    /// Where the replay of kept events starts, if there is one. As in
    /// Docker's daemon, `until` alone replays every kept event before it.
    pub fn replay_from(&self) -> Option<i128> {
        match (self.since, self.until) {
            (None, None) => None,
            (s, _) => Some(s.unwrap_or(0)),
        }
    }

    /// Whether `e` is past `until` (and so is not sent).
    pub fn after_until(&self, e: &crate::ops::Event) -> bool {
        self.until.is_some_and(|u| i128::from(e.time_nano) > u)
    }
}

impl Filters {
    /// `GET /events`: `since` replays the kept events from that time,
    /// `until` ends the stream, both in the times `prune` takes; `since`
    /// after `until` is refused, as Docker refuses it.
    pub fn events(
        &self,
        since: Option<&str>,
        until: Option<&str>,
        now: std::time::SystemTime,
    ) -> Result<EventFilter, String> {
        self.check(&["type", "event", "network", "container"])?;
        let since_raw = since.filter(|s| !s.is_empty());
        let until_raw = until.filter(|u| !u.is_empty());
        let since = since_raw
            .map(|s| time_nanos(s, now).ok_or_else(|| bad_time("since", s)))
            .transpose()?;
        let until = until_raw.map(|u| until_nanos(u, now)).transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                since_raw.unwrap_or_default(),
                until_raw.unwrap_or_default()
            ));
        }
        Ok(EventFilter {
            filters: self.clone(),
            since,
            until,
        })
    }
}

/// Validated `prune` filters.
#[derive(Debug, Clone)]
pub struct PruneFilter {
    filters: Filters,
    /// Only networks created before this (Unix nanoseconds).
    until: Option<i128>,
}

impl PruneFilter {
    pub fn matches(&self, n: &Network) -> bool {
        let not_label = match self.filters.0.get("label!") {
            None => true,
            Some(vals) => !vals.iter().any(|l| match l.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(l),
            }),
        };
        let until_ok = match self.until {
            None => true,
            // A record whose time cannot be read is kept: prune removes only
            // what it knows to be old enough.
            Some(limit) => rfc3339_nanos(&n.created).is_some_and(|c| c < limit),
        };
        self.filters.labels_match(n) && not_label && until_ok
    }
}

/// `until` as Docker's daemon reads it (see [`time_nanos`]); anything
/// else is refused, naming it.
pub fn until_nanos(s: &str, now: std::time::SystemTime) -> Result<i128, String> {
    time_nanos(s, now).ok_or_else(|| {
        format!(
            "invalid until filter {s:?}: expected a duration (10m, 1h30m), \
         an RFC 3339 time (2026-01-02T15:04:05Z) or a Unix timestamp"
        )
    })
}

fn bad_time(what: &str, s: &str) -> String {
    format!(
        "invalid {what} value {s:?}: expected a Unix timestamp, \
         an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (10m, 1h30m)"
    )
}

/// A time as Docker's daemon reads `until` and `since` (Unix nanoseconds):
/// a Go duration (`10m`, `1h30m`, `1.5h`) meaning that long before `now`,
/// an RFC 3339 time with an offset (`2026-01-02T15:04:05Z`, `…+02:00`,
/// fractions allowed), or a Unix time in seconds (`1767225600`,
/// `1767225600.5`). Anything else is `None`.
pub fn time_nanos(s: &str, now: std::time::SystemTime) -> Option<i128> {
    // "0" is a Unix time, as in Docker (Go would read it as a duration too).
    if s != "0"
        && let Some(d) = go_duration_nanos(s)
    {
        return Some(time::OffsetDateTime::from(now).unix_timestamp_nanos() - d);
    }
    if s.contains('-') || s.contains(':') {
        return rfc3339_nanos(s);
    }
    unix_nanos(s)
}

/// A Go `time.ParseDuration` string in nanoseconds: an optional sign, then
/// one or more decimal numbers (fractions allowed) each with a unit of ns,
/// us (µs), ms, s, m or h. Like Go, larger than ~292 years is an error.
///
/// Kept rather than go-parse-duration, the one crate for this: a 0.1 port
/// by one author, where this parser reads untrusted query strings and its
/// tests below pin what Docker's daemon accepts and refuses.
pub fn go_duration_nanos(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_end);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let e = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(e)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        // Digits past what an i64 of nanoseconds can hold overflow, as in Go.
        if int.len() > 19 {
            return None;
        }
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(scale)?;
        let mut div = 1i128;
        let mut num = 0i128;
        for c in frac.bytes().take(18) {
            num = num * 10 + i128::from(c - b'0');
            div *= 10;
        }
        part += num * scale / div;
        total = total.checked_add(part)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
        rest = after;
    }
    Some(if neg { -total } else { total })
}

/// RFC 3339 with an offset, in Unix nanoseconds.
fn rfc3339_nanos(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// `SECONDS[.FRACTION]`, digits only, seconds within an i64 (as Docker's
/// `strconv.ParseInt`), at most nine fraction digits.
fn unix_nanos(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) || frac.len() > 9 {
        return None;
    }
    if s.ends_with('.') {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let frac_ns: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32)
    };
    Some(i128::from(secs) * 1_000_000_000 + frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_shapes() {
        let f = Filters::parse(Some(r#"{"name":{"web":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(f.0["name"], vec!["web"]);
        assert_eq!(f.0["label"], vec!["a=b"]);
        assert!(f.check(&["name", "label"]).is_ok());
        assert!(f.check(&["name"]).unwrap_err().contains("label"));
        assert!(Filters::parse(Some("[1]")).is_err());
    }

    #[test]
    fn name_and_id_are_regular_expressions() {
        use crate::model::fixtures;
        let detail = |name: &str| NetworkDetail {
            network: fixtures::network(name, "10.1.0.0/24"),
            endpoints: vec![],
        };
        let (x, xy) = (detail("x"), detail("xy"));
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap().networks();
        let exact = f(r#"{"name":{"^x$":true}}"#).unwrap();
        assert!(exact.matches(&x) && !exact.matches(&xy));
        // Unanchored, as Docker's: a substring matches.
        let sub = f(r#"{"name":["x"]}"#).unwrap();
        assert!(sub.matches(&x) && sub.matches(&xy));
        let id = format!("^{}", &xy.network.id.as_str()[..6]);
        let by_id = f(&format!(r#"{{"id":["{id}"]}}"#)).unwrap();
        assert!(by_id.matches(&xy));
        for (raw, want) in [
            (r#"{"name":["web["]}"#, "'name=web['"),
            (r#"{"id":["(("]}"#, "'id=(('"),
            (r#"{"type":["odd"]}"#, "'type'='odd'"),
            (r#"{"dangling":["maybe"]}"#, "'dangling=maybe'"),
            (r#"{"bogus":["1"]}"#, "'bogus'"),
        ] {
            let e = f(raw).unwrap_err();
            assert!(e.contains(want), "{raw}: {e}");
        }
        // A pattern too large to compile is refused, not built.
        assert!(f(r#"{"name":["(a{1000}){1000}"]}"#).is_err());
    }

    #[test]
    fn event_filters_pick_and_until_ends() {
        use crate::ops::Event;
        let ev = |kind, action, name: &str, attrs: &[(&str, &str)]| Event {
            kind,
            action,
            id: format!("{name}0123456789abcdef"),
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: 0,
            time_nano: 0,
        };
        let f = |raw: &str| {
            Filters::parse(Some(raw))
                .unwrap()
                .events(None, None, at(100_000))
                .unwrap()
        };
        let create = ev("network", "create", "web", &[]);
        let connect = ev("network", "connect", "web", &[("sandbox", "a")]);
        let sb = ev("sandbox", "create", "a", &[]);
        let only_connects = f(r#"{"event":["connect"]}"#);
        assert!(only_connects.matches(&connect) && !only_connects.matches(&create));
        let web = f(r#"{"network":["web"]}"#);
        assert!(web.matches(&create) && !web.matches(&sb));
        let containers = f(r#"{"type":["container"]}"#);
        assert!(containers.matches(&sb) && !containers.matches(&create));
        let a = f(r#"{"container":["a"]}"#);
        assert!(a.matches(&sb) && a.matches(&connect) && !a.matches(&create));
        let e = Filters::parse(Some(r#"{"bogus":["1"]}"#))
            .unwrap()
            .events(None, None, at(100_000))
            .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let u = Filters::default()
            .events(None, Some("100060"), at(100_000))
            .unwrap();
        assert_eq!(u.until, Some(100_060 * SEC));
        assert!(
            Filters::default()
                .events(None, Some("soon"), at(1))
                .is_err()
        );
    }

    #[test]
    fn event_since_replays_from_a_time_and_refuses_what_docker_refuses() {
        let ev = |secs: u64| crate::ops::Event {
            kind: "network",
            action: "create",
            id: "x".into(),
            name: "x".into(),
            attributes: Default::default(),
            time: secs,
            time_nano: secs * 1_000_000_000,
        };
        let now = at(100_000);
        let f =
            |since: Option<&str>, until: Option<&str>| Filters::default().events(since, until, now);
        // The three shapes, as `until` takes them.
        for (s, want) in [
            ("1m", 99_940 * SEC),
            ("99940.5", 99_940 * SEC + SEC / 2),
            ("1970-01-02T03:45:40Z", 99_940 * SEC),
        ] {
            assert_eq!(f(Some(s), None).unwrap().since, Some(want), "{s}");
        }
        // No `since` and no `until`: live only; `until` alone replays all.
        assert_eq!(f(None, None).unwrap().replay_from(), None);
        assert_eq!(f(None, Some("0s")).unwrap().replay_from(), Some(0));
        let w = f(Some("1m"), Some("0s")).unwrap();
        assert_eq!(w.replay_from(), Some(99_940 * SEC));
        assert!(w.after_until(&ev(100_001)) && !w.after_until(&ev(100_000)));
        // Equal is fine; later is Docker's 400 naming both.
        assert!(f(Some("100000"), Some("100000")).is_ok());
        let e = f(Some("100001"), Some("100000")).unwrap_err();
        assert!(
            e.contains("`since` time (100001) cannot be after `until` time (100000)"),
            "{e}"
        );
        for bad in ["soon", "1d", "2026-13-45T00:00:00Z", "-5", "1.2.3"] {
            let e = f(Some(bad), None).unwrap_err();
            assert!(
                e.contains("since") && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
        // An empty one is absent, as Docker reads it.
        assert_eq!(f(Some(""), None).unwrap().since, None);
    }

    #[test]
    fn times() {
        assert_eq!(
            rfc3339_nanos("1970-01-02T00:00:01Z"),
            Some(86_401_000_000_000)
        );
        assert!(
            rfc3339_nanos(&crate::model::now_rfc3339()).is_some_and(|t| t > 1_700_000_000 * SEC)
        );
    }

    const SEC: i128 = 1_000_000_000;

    fn at(secs: i64) -> std::time::SystemTime {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .into()
    }

    #[test]
    fn in_until_accepts_what_docker_accepts() {
        let now = at(100_000);
        let ok = |s: &str| until_nanos(s, now).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("1h"), (100_000 - 3600) * SEC);
        assert_eq!(ok("10m"), (100_000 - 600) * SEC);
        assert_eq!(ok("1h30m"), (100_000 - 5400) * SEC);
        assert_eq!(ok("1.5h"), (100_000 - 5400) * SEC);
        assert_eq!(ok("2h45m10.5s"), 100_000 * SEC - (9910 * SEC + SEC / 2));
        assert_eq!(ok("300ms"), 100_000 * SEC - 300_000_000);
        assert_eq!(ok("1us"), 100_000 * SEC - 1_000);
        assert_eq!(ok("1\u{b5}s"), 100_000 * SEC - 1_000);
        assert_eq!(ok("-1h"), (100_000 + 3600) * SEC);
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("123"), 123 * SEC);
        assert_eq!(ok("123.5"), 123 * SEC + SEC / 2);
        assert_eq!(ok("123.000000001"), 123 * SEC + 1);
        assert_eq!(ok("1970-01-02T00:00:01Z"), 86_401 * SEC);
        assert_eq!(ok("1970-01-02T02:00:01+02:00"), 86_401 * SEC);
        assert_eq!(ok("1970-01-02T00:00:01.25Z"), 86_401 * SEC + SEC / 4);
    }

    #[test]
    fn in_until_refuses_anything_else_naming_it() {
        for bad in [
            "garbage",
            "2026-13-45T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "99999999999999999999",
            "1.2.3",
            "123.",
            ".",
            "",
            "-",
            "h",
            "1x",
            "1d",
            "1h30",
            "10 m",
            "2026-01-02",
            "2026-01-02T15:04:05",
            "-5",
            "1.0000000001",
            "3000000h",
            "9223372036855s",
        ] {
            let e = until_nanos(bad, at(100_000)).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn in_prune_filters_are_checked_before_use() {
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap().prune(at(100_000));
        assert!(
            f(r#"{"until":{"garbage":true}}"#)
                .unwrap_err()
                .contains("garbage")
        );
        assert!(
            f(r#"{"until":["1h","2h"]}"#)
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            f(r#"{"dangling":["true"]}"#)
                .unwrap_err()
                .contains("dangling")
        );
        assert!(Filters::parse(Some(r#"{"until":[1]}"#)).is_err());
        assert!(Filters::parse(Some(r#"{"until":{"1h":"yes"}}"#)).is_err());
        let old = crate::model::fixtures::network("old", "10.1.0.0/24");
        let mut new = old.clone();
        new.created = "1970-01-02T03:46:40Z".into(); // 100_000 s
        let mut older = old.clone();
        older.created = "1970-01-01T00:00:00Z".into();
        let p = f(r#"{"until":["1h"]}"#).unwrap();
        assert!(p.matches(&older) && !p.matches(&new));
        assert!(f("{}").unwrap().matches(&new));
    }
}
