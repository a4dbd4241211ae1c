//! `--format` templates as Docker's CLI takes them, the subset its users
//! write: `{{.Field}}`, `{{.A.B}}` paths and `{{json .Field}}` (or
//! `{{json .}}`), with `\t` and `\n` as tab and newline, and a `table `
//! prefix for a header row. Fields are looked up case-insensitively in the
//! item's JSON, so `{{.Name}}` reads `name`.
//!
//! Kept here rather than a Go-template crate: the one maintained Rust
//! implementation (gtmpl) brings Go's whole template language, with
//! conditionals and range, and still does not read serde values; what the
//! CLI needs is field lookup, and an unknown field must be an error naming
//! it rather than Go's `<no value>`.

use anyhow::{Result, bail};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field { path: Vec<String>, json: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// `table TEMPLATE`: print a header row of the field names first.
    pub table: bool,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let (table, src) = match src.strip_prefix("table ") {
            Some(rest) => (true, rest),
            None => (false, src),
        };
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = src.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let Some(end) = rest[start..].find("}}") else {
                bail!("invalid --format {src:?}: {{{{ without }}}}");
            };
            let action = rest[start + 2..start + end].trim();
            let (json, expr) = match action.strip_prefix("json ") {
                Some(e) => (true, e.trim()),
                None => (false, action),
            };
            let Some(path) = expr.strip_prefix('.') else {
                bail!(
                    "invalid --format action {{{{{action}}}}}: expected {{{{.Field}}}} or {{{{json .Field}}}}"
                );
            };
            let path: Vec<String> = if path.is_empty() {
                vec![]
            } else {
                path.split('.').map(str::to_string).collect()
            };
            if path.iter().any(|p| p.is_empty()) {
                bail!("invalid --format field {expr:?}");
            }
            parts.push(Part::Field { path, json });
            rest = &rest[start + end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, table })
    }

    /// The header row of a `table` template: each field's last name in
    /// capitals.
    pub fn header(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field { path, .. } => path.last().map_or("ITEM".into(), |f| f.to_uppercase()),
            })
            .collect()
    }

    pub fn render(&self, item: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field { path, json } => {
                    let mut v = item;
                    for (i, name) in path.iter().enumerate() {
                        v = lookup(v, name).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--format: no field .{} (the item has: {})",
                                path[..=i].join("."),
                                keys(v)
                            )
                        })?;
                    }
                    match (json, v) {
                        (false, Value::String(s)) => out.push_str(s),
                        (false, Value::Null) => {}
                        _ => out.push_str(&serde_json::to_string(v)?),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn lookup<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn keys(v: &Value) -> String {
    v.as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "no fields".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_paths_json_and_tables() {
        let item = json!({"id": "abc", "Name": "web", "driver": {"subnet": "10.0.0.0/24"}, "labels": {"a": "b"}});
        let t =
            Template::parse("{{.Name}}\\t{{ .ID }} {{.driver.Subnet}} {{json .Labels}}").unwrap();
        assert_eq!(
            t.render(&item).unwrap(),
            "web\tabc 10.0.0.0/24 {\"a\":\"b\"}"
        );
        let t = Template::parse("table {{.Name}}\\t{{.ID}}").unwrap();
        assert!(t.table);
        assert_eq!(t.header(), "NAME\tID");
        let e = Template::parse("{{.Nope}}")
            .unwrap()
            .render(&item)
            .unwrap_err();
        assert!(e.to_string().contains(".Nope"), "{e}");
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{Name}}").is_err());
        assert_eq!(
            Template::parse("{{json .}}")
                .unwrap()
                .render(&json!(1))
                .unwrap(),
            "1"
        );
    }
}
