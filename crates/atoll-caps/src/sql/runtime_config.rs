//! Which backend serves each database: the runtime configuration's
//! `[sql.NAME]` sections, and the default (SQLite in the data directory)
//! for a database without one.
//!
//! ```toml
//! [sql.default]
//! backend = "sqlite"                 # sqlite (default) | postgres
//! path = "default.sqlite"            # relative to data_dir (default: NAME.sqlite)
//! connections = 4                    # SQLite: reader/writer threads (default 4)
//!
//! [sql.reports]
//! backend = "postgres"
//! url = "postgres://atoll:secret@db:5432/shop?sslmode=require"
//! connections = 16                   # PostgreSQL: pool size (default 16)
//! ```
//!
//! TLS to PostgreSQL follows the URL's `sslmode`, as libpq's does:
//! `disable`, `prefer` (the default: TLS if the server offers it),
//! `require`, `verify-ca` or `verify-full`; `sslrootcert=ca.pem` (relative
//! to this file) is the CA to trust instead of the system's roots
//! (`sslrootcert=system`: those, with `verify-full`); `sslcert=me.pem` with
//! `sslkey=me.key` (relative to this file too), the client certificate to
//! present. What each checks: `postgres_tls.rs`.

use super::postgres_tls::{self, TlsFiles};
use super::{PostgresDatabase, SqlDatabase, SqliteDatabase};
use crate::capability::app_runtime_sections;
use atoll_manifest::{Location, ManifestError, RuntimeConfigFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// SQLite threads, or PostgreSQL pooled connections, unless configured.
pub const DEFAULT_SQLITE_CONNECTIONS: usize = 4;
pub const DEFAULT_POSTGRES_CONNECTIONS: usize = 16;

/// One `[sql.NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlBackendConfig {
    Sqlite {
        path: Option<PathBuf>,
        connections: Option<usize>,
    },
    Postgres {
        url: String,
        /// The URL's `sslrootcert`, `sslcert` and `sslkey`, resolved
        /// against the runtime configuration's directory, read and checked.
        tls: TlsFiles,
        connections: Option<usize>,
        loc: Location,
    },
}

#[derive(Deserialize, Default)]
struct Sections {
    #[serde(default)]
    sql: BTreeMap<String, Spanned<RawSql>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    backend: Option<Spanned<String>>,
    path: Option<String>,
    url: Option<Spanned<String>>,
    connections: Option<Spanned<i64>>,
}

/// Every `[sql.NAME]` of the runtime configuration, or where each is wrong.
pub fn parse(runtime: &RuntimeConfigFile) -> Result<BTreeMap<String, SqlBackendConfig>, Vec<ManifestError>> {
    let (scoped, src) = app_runtime_sections::<Sections>(runtime)?;
    let Some(src) = src else {
        return Ok(BTreeMap::new());
    };
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    // An app's own `[apps.NAME.sql.*]` come last, so they win.
    for (name, spec, prefix) in scoped
        .into_iter()
        .flat_map(|(p, s)| s.sql.into_iter().map(move |(n, v)| (n, v, p.clone())))
    {
        let key = format!("{prefix}sql.{name}");
        let r = spec.get_ref();
        let connections = match &r.connections {
            None => None,
            Some(c) => match usize::try_from(*c.get_ref()) {
                Ok(n @ 1..=1024) => Some(n),
                _ => {
                    errors.push(src.error(
                        src.locate(c.span()),
                        format!("{key}.connections"),
                        "must be from 1 to 1024",
                    ));
                    continue;
                }
            },
        };
        let backend = r.backend.as_ref().map_or("sqlite", |b| b.get_ref().as_str());
        let config = match backend {
            "sqlite" => {
                if let Some(url) = &r.url {
                    errors.push(src.error(
                        src.locate(url.span()),
                        format!("{key}.url"),
                        "an SQLite database is a file: give `path`, or set `backend = \"postgres\"`",
                    ));
                    continue;
                }
                SqlBackendConfig::Sqlite {
                    path: r.path.as_ref().map(PathBuf::from),
                    connections,
                }
            }
            "postgres" => match &r.url {
                Some(url) if url.get_ref().starts_with("postgres://") || url.get_ref().starts_with("postgresql://") => {
                    let base = src.path.parent().unwrap_or(Path::new("."));
                    match postgres_url(url.get_ref(), base) {
                        Ok(tls) => SqlBackendConfig::Postgres {
                            url: url.get_ref().clone(),
                            tls,
                            connections,
                            loc: src.locate(url.span()),
                        },
                        Err(e) => {
                            errors.push(src.error(src.locate(url.span()), format!("{key}.url"), e));
                            continue;
                        }
                    }
                }
                Some(url) => {
                    errors.push(src.error(
                        src.locate(url.span()),
                        format!("{key}.url"),
                        "a PostgreSQL URL starts with postgres:// or postgresql://",
                    ));
                    continue;
                }
                None => {
                    errors.push(src.error(
                        src.locate(spec.span()),
                        &key,
                        "the postgres backend needs `url = \"postgres://user:password@host:port/database\"`",
                    ));
                    continue;
                }
            },
            other => {
                let span = r.backend.as_ref().map_or(spec.span(), |b| b.span());
                errors.push(src.error(
                    src.locate(span),
                    format!("{key}.backend"),
                    format!("unknown sql backend \"{other}\" (expected sqlite or postgres)"),
                ));
                continue;
            }
        };
        out.insert(name, config);
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Checks a PostgreSQL URL whole, libpq's TLS settings included; its
/// files resolved against `base`, once read and checked (not at the first
/// connection, which may be much later).
fn postgres_url(url: &str, base: &Path) -> Result<TlsFiles, String> {
    let split = postgres_tls::split(url)?;
    if let Err(e) = split.client_url.parse::<tokio_postgres::Config>() {
        return Err(format!("not a PostgreSQL URL: {e}"));
    }
    let files = split.files.resolve(base);
    postgres_tls::check_files(&split.files, &files)?;
    Ok(files)
}

/// Where one database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlLocation {
    Sqlite {
        file: PathBuf,
        connections: usize,
    },
    Postgres {
        url: String,
        tls: TlsFiles,
        connections: usize,
    },
}

/// Where the database `name` lives: as configured, else the SQLite file
/// `<data_dir>/<name>.sqlite`. The one place these defaults are decided.
pub fn sql_location(config: &BTreeMap<String, SqlBackendConfig>, data_dir: &Path, name: &str) -> SqlLocation {
    match config.get(name) {
        None => SqlLocation::Sqlite {
            file: data_dir.join(format!("{name}.sqlite")),
            connections: DEFAULT_SQLITE_CONNECTIONS,
        },
        Some(SqlBackendConfig::Sqlite { path, connections }) => SqlLocation::Sqlite {
            file: data_dir.join(path.clone().unwrap_or_else(|| format!("{name}.sqlite").into())),
            connections: connections.unwrap_or(DEFAULT_SQLITE_CONNECTIONS),
        },
        Some(SqlBackendConfig::Postgres {
            url, tls, connections, ..
        }) => SqlLocation::Postgres {
            url: url.clone(),
            tls: tls.clone(),
            connections: connections.unwrap_or(DEFAULT_POSTGRES_CONNECTIONS),
        },
    }
}

/// Opens the database at `location`.
pub async fn open(location: &SqlLocation, name: &str) -> Result<Arc<dyn SqlDatabase>, String> {
    match location {
        SqlLocation::Sqlite { file, connections } => {
            Ok(Arc::new(SqliteDatabase::open(file, *connections)?) as Arc<dyn SqlDatabase>)
        }
        SqlLocation::Postgres { url, tls, connections } => {
            Ok(Arc::new(PostgresDatabase::new(url, tls, *connections, name)?) as Arc<dyn SqlDatabase>)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<BTreeMap<String, SqlBackendConfig>, String> {
        let runtime = RuntimeConfigFile::parse(text, Path::new("rt.toml")).map_err(|e| e.to_string())?;
        parse(&runtime).map_err(|e| atoll_manifest::ManifestErrors(e).to_string())
    }

    #[test]
    fn parses_both_backends_and_defaults_to_sqlite_in_the_data_dir() {
        let sql = parse_text(
            "[sql.default]\n[sql.local]\npath = \"x/local.db\"\nconnections = 2\n[sql.pg]\nbackend = \"postgres\"\nurl = \"postgres://u:p@db:5432/shop\"\n",
        )
        .unwrap();
        let dir = Path::new("/data");
        assert_eq!(
            sql_location(&sql, dir, "default"),
            SqlLocation::Sqlite {
                file: "/data/default.sqlite".into(),
                connections: DEFAULT_SQLITE_CONNECTIONS
            }
        );
        assert_eq!(
            sql_location(&sql, dir, "local"),
            SqlLocation::Sqlite {
                file: "/data/x/local.db".into(),
                connections: 2
            }
        );
        assert_eq!(
            sql_location(&sql, dir, "pg"),
            SqlLocation::Postgres {
                url: "postgres://u:p@db:5432/shop".into(),
                tls: TlsFiles::default(),
                connections: DEFAULT_POSTGRES_CONNECTIONS
            }
        );
        assert!(matches!(
            sql_location(&sql, dir, "unconfigured"),
            SqlLocation::Sqlite { .. }
        ));
    }

    #[test]
    fn errors_are_located() {
        let err = parse_text(
            "[sql.a]\nbackend = \"mysql\"\n[sql.b]\nbackend = \"postgres\"\nurl = \"mysql://x\"\n[sql.c]\nbackend = \"postgres\"\n[sql.d]\nconnections = 0\n[sql.e]\nurl = \"postgres://x\"\n[sql.f]\nbackend = \"postgres\"\nurl = \"postgres://h:notaport/db\"\n",
        )
        .unwrap_err();
        for expected in [
            "rt.toml:2:11: sql.a.backend: unknown sql backend \"mysql\" (expected sqlite or postgres)",
            "rt.toml:5:7: sql.b.url: a PostgreSQL URL starts with postgres://",
            "sql.c: the postgres backend needs `url",
            "rt.toml:9:15: sql.d.connections: must be from 1 to 1024",
            "rt.toml:11:7: sql.e.url: an SQLite database is a file",
            "rt.toml:14:7: sql.f.url: not a PostgreSQL URL",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        let err = parse_text("[sql.a]\nbakend = \"sqlite\"\n").unwrap_err();
        assert!(
            err.contains("rt.toml:2:1") && err.contains("unknown field `bakend`"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod root_cert_tests {
    use super::*;

    fn parse_in(dir: &Path, url: &str) -> Result<BTreeMap<String, SqlBackendConfig>, String> {
        let text = format!("[sql.pg]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
        let runtime = RuntimeConfigFile::parse(&text, &dir.join("rt.toml")).map_err(|e| e.to_string())?;
        parse(&runtime).map_err(|e| atoll_manifest::ManifestErrors(e).to_string())
    }

    #[test]
    fn sslrootcert_is_relative_to_the_file_and_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("rt.toml");
        let err = parse_in(
            dir.path(),
            "postgres://u:secret@db/x?sslmode=verify-full&sslrootcert=ca.pem",
        )
        .unwrap_err();
        let want = format!(
            "{}:3:7: sql.pg.url: sslrootcert \"ca.pem\": cannot read {}",
            rt.display(),
            dir.path().join("ca.pem").display()
        );
        assert!(err.contains(&want), "{err}");
        // The message itself; the excerpt under it quotes the file's line.
        assert!(!err.lines().next().unwrap().contains("secret"), "{err}");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let err = parse_in(dir.path(), "postgres://db/x?sslrootcert=ca.pem").unwrap_err();
        assert!(
            err.contains("sql.pg.url: sslrootcert \"ca.pem\": ") && err.contains("has no certificate in it"),
            "{err}"
        );
        let err = parse_in(dir.path(), "postgres://db/x?sslmode=verify-ca").unwrap_err();
        assert!(
            err.contains("sql.pg.url: sslmode=verify-ca needs sslrootcert=FILE"),
            "{err}"
        );
    }

    #[test]
    fn sslcert_and_sslkey_are_read_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("rt.toml");
        let at = |name: &str| dir.path().join(name).display().to_string();
        let ca = atoll_testkit::TestCa::new("test CA");
        let (me, other) = (ca.issue(&["atoll"]), ca.issue(&["atoll"]));
        std::fs::write(dir.path().join("me.pem"), &me.cert).unwrap();
        std::fs::write(dir.path().join("me.key"), &me.key).unwrap();
        std::fs::write(dir.path().join("other.key"), &other.key).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not PEM at all\n").unwrap();
        std::fs::write(dir.path().join("sealed.key"), me.sealed_key("open sesame")).unwrap();
        // OpenSSL's older encrypted form (`openssl genrsa -aes256
        // -traditional`); only its headers are read, so any base64 will do.
        let body: String = me
            .key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            dir.path().join("sealed-rsa.key"),
            format!("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0123456789ABCDEF0123456789ABCDEF\n\n{body}\n-----END RSA PRIVATE KEY-----\n"),
        )
        .unwrap();
        let url = |tls: &str| format!("postgres://u:secret@db/x?{tls}");
        let parsed = parse_in(dir.path(), &url("sslcert=me.pem&sslkey=me.key")).unwrap();
        let Some(SqlBackendConfig::Postgres { tls, .. }) = parsed.get("pg") else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            tls.client_cert,
            Some(crate::sql::ClientCert {
                cert: dir.path().join("me.pem"),
                key: dir.path().join("me.key"),
                passphrase: None,
            })
        );
        // An encrypted key with its passphrase (percent-encoded) loads.
        let parsed = parse_in(
            dir.path(),
            &url("sslcert=me.pem&sslkey=sealed.key&sslpassword=open%20sesame"),
        )
        .unwrap();
        let Some(SqlBackendConfig::Postgres { tls, .. }) = parsed.get("pg") else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            tls.client_cert.as_ref().and_then(|c| c.passphrase.as_ref()),
            Some(&crate::sql::Passphrase("open sesame".into()))
        );
        for (settings, want) in [
            (
                "sslcert=me.pem",
                "sql.pg.url: sslcert needs sslkey=FILE: sslcert and sslkey go together".to_string(),
            ),
            (
                "sslkey=me.key&sslmode=verify-full",
                "sql.pg.url: sslkey needs sslcert=FILE".to_string(),
            ),
            (
                "sslcert=missing.pem&sslkey=me.key",
                format!("sql.pg.url: sslcert \"missing.pem\": cannot read {}", at("missing.pem")),
            ),
            (
                "sslcert=junk.pem&sslkey=me.key",
                format!(
                    "sql.pg.url: sslcert \"junk.pem\": {} has no certificate in it",
                    at("junk.pem")
                ),
            ),
            (
                "sslcert=me.key&sslkey=me.key",
                format!(
                    "sql.pg.url: sslcert \"me.key\": {} has no certificate in it",
                    at("me.key")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=me.pem",
                format!(
                    "sql.pg.url: sslkey \"me.pem\": {} has no private key in it",
                    at("me.pem")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=junk.pem",
                format!(
                    "sql.pg.url: sslkey \"junk.pem\": {} has no private key in it",
                    at("junk.pem")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=sealed.key",
                format!(
                    "sql.pg.url: sslkey \"sealed.key\": {} holds an encrypted private key: give its passphrase as sslpassword=PASSPHRASE in the URL (percent-encoded), or write a decrypted copy",
                    at("sealed.key")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=sealed.key&sslpassword=open%20sesam",
                format!(
                    "sql.pg.url: sslkey \"sealed.key\": {}: the passphrase given does not decrypt its private key",
                    at("sealed.key")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=sealed-rsa.key&sslpassword=open%20sesame",
                format!(
                    "sql.pg.url: sslkey \"sealed-rsa.key\": {} holds a key encrypted the way older OpenSSL did (Proc-Type: 4,ENCRYPTED), which Atoll does not read: convert it to an encrypted PKCS#8 key",
                    at("sealed-rsa.key")
                ),
            ),
            (
                "sslcert=me.pem&sslkey=other.key",
                format!(
                    "{}:3:7: sql.pg.url: sslkey \"other.key\": the private key in {} is not the key of the certificate in {}",
                    rt.display(),
                    at("other.key"),
                    at("me.pem")
                ),
            ),
            (
                "sslrootcert=system&sslmode=require",
                format!(
                    "{}:3:7: sql.pg.url: sslmode=require is weaker than sslrootcert=system allows",
                    rt.display()
                ),
            ),
        ] {
            let err = parse_in(dir.path(), &url(settings)).unwrap_err();
            assert!(err.contains(&want), "{settings}: missing {want:?} in:\n{err}");
            // The message itself; the excerpt under it quotes the file's line.
            let message = err.lines().next().unwrap();
            assert!(!message.contains("secret") && !message.contains("PRIVATE"), "{err}");
            // Nor does the quoted line show a passphrase.
            assert!(!err.contains("sesam"), "{err}");
        }
    }
}
