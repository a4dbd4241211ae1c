//! Whole-table re-reads that skip rows which did not change.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::model::{Endpoint, Sandbox};

/// Whole-table reads for a reader that reads everything on every change
/// (the daemon's DNS): a row whose stored text is the same as last time is
/// neither parsed nor copied again. Parsing and copying were most of the
/// cost of such a read.
#[derive(Default)]
pub struct Rereader {
    sandboxes: Known<Sandbox>,
    endpoints: Known<Endpoint>,
}

/// By row id: the text last read and what it parsed to.
type Known<T> = HashMap<String, (String, Arc<T>)>;

impl Rereader {
    pub fn sandboxes(&mut self, c: &Connection) -> Result<Vec<Arc<Sandbox>>> {
        reread(
            c,
            "SELECT id, spec FROM sandboxes ORDER BY name",
            &mut self.sandboxes,
        )
    }

    pub fn endpoints(&mut self, c: &Connection) -> Result<Vec<Arc<Endpoint>>> {
        reread(c, "SELECT id, spec FROM endpoints", &mut self.endpoints)
    }
}

fn reread<T: serde::de::DeserializeOwned>(
    c: &Connection,
    query: &str,
    known: &mut Known<T>,
) -> Result<Vec<Arc<T>>> {
    let mut st = c.prepare_cached(query)?;
    let mut rows = st.query([])?;
    let mut next: Known<T> = HashMap::with_capacity(known.len());
    let mut out = Vec::with_capacity(known.len());
    while let Some(r) = rows.next()? {
        let id = r
            .get_ref(0)?
            .as_str()
            .map_err(|e| Error::Store(e.to_string()))?;
        let spec = r
            .get_ref(1)?
            .as_str()
            .map_err(|e| Error::Store(e.to_string()))?;
        let entry = match known.remove_entry(id) {
            Some((id, (old, v))) if old == spec => (id, (old, v)),
            _ => (
                id.to_string(),
                (spec.to_string(), Arc::new(serde_json::from_str(spec)?)),
            ),
        };
        out.push(Arc::clone(&entry.1.1));
        next.insert(entry.0, entry.1);
    }
    *known = next;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{sbx, tmpdir};
    use crate::store::{Store, delete_sandbox, insert_sandbox};

    /// The re-reader returns what a fresh read would: new rows, changed
    /// rows (re-parsed, not the cached value), without removed rows.
    #[test]
    fn rereader_follows_inserts_changes_and_removals() {
        let dir = tmpdir("reread");
        let s = Store::open(&dir).unwrap();
        let mut r = Rereader::default();
        let names = |r: &mut Rereader| -> Vec<String> {
            s.read(|c| r.sandboxes(c))
                .unwrap()
                .iter()
                .map(|x| x.name.to_string())
                .collect()
        };
        let (a, b) = (sbx("a"), sbx("b"));
        s.write(|c| insert_sandbox(c, &a)).unwrap();
        assert_eq!(names(&mut r), ["a"]);
        s.write(|c| insert_sandbox(c, &b)).unwrap();
        assert_eq!(names(&mut r), ["a", "b"]);
        // Same id, other text: the new value, not the remembered one.
        s.write(|c| {
            c.execute(
                "UPDATE sandboxes SET spec = replace(spec, '\"b\"', '\"c\"') WHERE id = ?1",
                [b.id.as_str()],
            )?;
            Ok(())
        })
        .unwrap();
        let again = s.read(|c| r.sandboxes(c)).unwrap();
        assert_eq!(
            again.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        s.write(|c| delete_sandbox(c, &a.id)).unwrap();
        assert_eq!(names(&mut r), ["c"]);
        assert_eq!(r.sandboxes.len(), 1, "removed rows are forgotten");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
