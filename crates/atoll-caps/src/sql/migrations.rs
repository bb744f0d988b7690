//! The app's migrations: `migrations/*.sql` for the database `default`,
//! `migrations/NAME/*.sql` for the database `NAME`, applied in file-name
//! order (so `001_users.sql` before `002_orders.sql`). The backends apply
//! them; what they share (the order, the record, the checksum) is here.

use atoll_manifest::{ManifestError, SourceText};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file's name, which is what is recorded as applied.
    pub name: String,
    /// Where it came from, for messages: `migrations/001_users.sql`.
    pub path: String,
    pub sql: String,
    /// Hex SHA-256 of `sql`: a recorded migration must not change.
    pub sha256: String,
}

impl Migration {
    pub fn new(path: &str, name: &str, sql: &str) -> Migration {
        Migration {
            name: name.to_string(),
            path: path.to_string(),
            sql: sql.to_string(),
            sha256: hex::encode(Sha256::digest(sql.as_bytes())),
        }
    }
}

/// The table every backend records applied migrations in.
pub const TABLE: &str = "atoll_migrations";

/// What a backend does with each migration, given what it finds recorded.
pub(crate) fn pending<'a>(
    migrations: &'a [Migration],
    recorded: &BTreeMap<String, String>,
) -> Result<Vec<&'a Migration>, (String, super::SqlError)> {
    let mut out = Vec::new();
    for m in migrations {
        match recorded.get(&m.name) {
            Some(sum) if *sum == m.sha256 => {}
            Some(_) => {
                return Err((
                    m.path.clone(),
                    super::SqlError::Backend(format!(
                        "migration \"{}\" was applied, and its file has changed since; add a new migration instead of editing an applied one",
                        m.name
                    )),
                ));
            }
            None => out.push(m),
        }
    }
    Ok(out)
}

/// Groups `files` (paths relative to `migrations/`, with their text) by
/// database. Files that do not end in `.sql` are not migrations.
pub(crate) fn by_database(
    files: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<Migration>>, Box<ManifestError>> {
    let mut out: BTreeMap<String, Vec<Migration>> = BTreeMap::new();
    for (rel, sql) in files {
        if !rel.ends_with(".sql") {
            continue;
        }
        let path = format!("migrations/{rel}");
        let (database, name) = match rel.split('/').collect::<Vec<_>>()[..] {
            [name] => ("default", name),
            [db, name] => (db, name),
            _ => {
                return Err(Box::new(SourceText::new(Path::new(&path), "").file_error(
                    "migrations are migrations/*.sql (database default) or migrations/NAME/*.sql (database NAME), no deeper",
                )));
            }
        };
        out.entry(database.to_string())
            .or_default()
            .push(Migration::new(&path, name, sql));
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(out)
}
