//! One operation per capability, each taking a JSON command, so tests can
//! drive every operation and every denial through a real guest.

use atoll_sdk::http::Request as HttpRequest;
use atoll_sdk::{Error, Request, Response, Result, files, http, kv, msg, sql, state, vars};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

atoll_sdk::handlers! {
    "kv" => kv_op,
    "fetch" => fetch,
    "var" => var,
    "file" => file,
    "escape" => escape,
    "visit" => visit,
    "echo" => echo,
    "upper" => upper,
    "sleep" => sleep,
    "state" => show_state,
    "fail" => fail,
    "tag" => tag,
    "publish" => publish,
    "request" => request,
    "whoami" => whoami,
    "sql" => sql_op,
    "kvget" => kv_get,
    "sqlget" => sql_get,
}

#[derive(Deserialize)]
struct SqlCmd {
    #[serde(default = "query")]
    op: String,
    name: String,
    #[serde(default)]
    params: Vec<Value>,
}

fn query() -> String {
    "query".into()
}

fn to_sql(v: &Value) -> Result<sql::Value> {
    Ok(match v {
        Value::Null => sql::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default().into(),
        Value::Number(n) => n.as_f64().unwrap_or_default().into(),
        Value::String(s) => s.as_str().into(),
        // {"bin": [1, 2]} is bytes.
        Value::Object(o) if o.contains_key("bin") => serde_json::from_value::<Vec<u8>>(o["bin"].clone())
            .map_err(|e| Error::status(400, e.to_string()))?
            .into(),
        other => return Err(Error::status(400, format!("not a parameter: {other}"))),
    })
}

fn from_sql(v: &sql::Value) -> Value {
    match v {
        sql::Value::Null => Value::Null,
        sql::Value::Bool(b) => json!(b),
        sql::Value::Int(i) => json!(i),
        sql::Value::Float(f) => json!(f),
        sql::Value::Text(t) => json!(t),
        sql::Value::Bytes(b) => json!({ "bin": b }),
    }
}

fn rows_json(r: &sql::Rows) -> Value {
    json!({
        "columns": r.columns,
        "rows": r.rows.iter().map(|row| row.iter().map(from_sql).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "rows_affected": r.rows_affected,
    })
}

/// `{"op"?: "query"|"transaction", "name": ..., "params": [...]}` → the
/// result as JSON (`{"bin": [...]}` for bytes, both ways). A failed query
/// answers 409 with the host's message: the guest read it, it did not trap.
fn sql_op(req: Request) -> Result<Response> {
    let c: SqlCmd = req.json()?;
    let out = match c.op.as_str() {
        "query" => {
            let params = c.params.iter().map(to_sql).collect::<Result<Vec<_>>>()?;
            sql::query(&c.name, &params).map(|r| rows_json(&r))
        }
        "transaction" => {
            let mut lists = Vec::new();
            for list in &c.params {
                let list = list
                    .as_array()
                    .ok_or_else(|| Error::status(400, "one array per member"))?;
                lists.push(list.iter().map(to_sql).collect::<Result<Vec<_>>>()?);
            }
            let refs: Vec<&[sql::Value]> = lists.iter().map(Vec::as_slice).collect();
            sql::transaction(&c.name, &refs).map(|rs| Value::Array(rs.iter().map(rows_json).collect()))
        }
        other => return Err(Error::status(400, format!("unknown sql op {other}"))),
    };
    match out {
        Ok(v) => Response::json(&v),
        Err(e) => Err(Error::status(409, e.message())),
    }
}

/// The same small read two ways, for the README's comparison: the value
/// of key "user:1" in the default store, and the name of user 1.
fn kv_get(_: Request) -> Result<Vec<u8>> {
    Ok(kv::get("user:1")?.unwrap_or_default())
}

fn sql_get(_: Request) -> Result<Vec<u8>> {
    let rows = sql::query("get_user", &[1.into()])?;
    let name = rows.first().and_then(|r| r.get("name")?.as_str().map(str::to_string));
    Ok(name.unwrap_or_default().into_bytes())
}

#[derive(Deserialize)]
struct KvCmd {
    op: String,
    #[serde(default = "default_store")]
    store: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    ttl_ms: Option<u64>,
    #[serde(default)]
    by: i64,
    #[serde(default)]
    prefix: String,
}

fn default_store() -> String {
    "default".into()
}

/// `{"op": "get"|"set"|"delete"|"exists"|"keys"|"increment", ...}` → JSON.
fn kv_op(req: Request) -> Result<Response> {
    let c: KvCmd = req.json()?;
    let s = kv::store(&c.store);
    let out = match c.op.as_str() {
        "get" => json!(s.get_string(&c.key)?),
        "set" => {
            match c.ttl_ms {
                Some(ms) => s.set_with_ttl(&c.key, c.value.as_bytes(), Duration::from_millis(ms))?,
                None => s.set(&c.key, c.value.as_bytes())?,
            }
            json!(null)
        }
        "delete" => json!(s.delete(&c.key)?),
        "exists" => json!(s.exists(&c.key)?),
        "keys" => json!(s.keys(&c.prefix, 100)?),
        "increment" => json!(s.increment(&c.key, c.by)?),
        other => return Err(Error::status(400, format!("unknown kv op {other}"))),
    };
    Response::json(&out)
}

#[derive(Deserialize)]
struct FetchCmd {
    url: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    timeout_ms: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

/// `{"url": ..., "method"?, "headers"?, "body"?}` → `{status, headers, body}`.
fn fetch(req: Request) -> Result<Response> {
    let c: FetchCmd = req.json()?;
    let mut r = HttpRequest::new(&c.method, &c.url).body(c.body.into_bytes());
    for (n, v) in &c.headers {
        r = r.header(n, v);
    }
    if let Some(ms) = c.timeout_ms {
        r = r.timeout(Duration::from_millis(ms));
    }
    let resp = http::fetch(&r)?;
    Response::json(&json!({
        "status": resp.status,
        "headers": resp.headers,
        "body": String::from_utf8_lossy(&resp.body),
    }))
}

/// The body names a variable; answers its value (or null).
fn var(req: Request) -> Result<Response> {
    Response::json(&vars::get(req.text()?)?)
}

/// The body is a path; answers the file, or 404.
fn file(req: Request) -> Result<Response> {
    let path = req.text()?.to_string();
    if path.ends_with('/') || path.is_empty() {
        return Response::json(&files::list(path.trim_end_matches('/'))?);
    }
    match files::read(&path)? {
        Some(bytes) => Ok(Response::new(bytes)),
        None => Err(Error::status(404, format!("no file {path}"))),
    }
}

/// Everything a guest might try to get around its grants, and what happened.
fn escape(_: Request) -> Result<Response> {
    let report: Value = json!({
        "read_etc_passwd": std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string()).err(),
        "read_cwd": std::fs::read_dir(".").map(|_| ()).map_err(|e| e.to_string()).err(),
        "env_home": std::env::var("HOME").ok(),
        "env_count": std::env::vars().count(),
        "args": std::env::args().count(),
        "other_store": kv::store("../other").get("x").err().map(|e| e.to_string()),
        "raw_host_call": atoll_sdk::host::call("", "kv", "get", b"x").err().map(|e| e.to_string()),
    });
    Response::json(&report)
}

/// Counts a visit in the default store; answers the count.
fn visit(_: Request) -> Result<String> {
    Ok(kv::increment("visits", 1)?.to_string())
}

fn echo(req: Request) -> Result<Vec<u8>> {
    Ok(req.into_body())
}

fn upper(req: Request) -> Result<Response> {
    Ok(Response::new(req.body().to_ascii_uppercase()))
}

/// Sleeps as many milliseconds as the body says (WASI poll_oneoff: the host
/// can run other work meanwhile), then answers "slept <ms>".
fn sleep(req: Request) -> Result<String> {
    let ms: u64 = req
        .text()?
        .trim()
        .parse()
        .map_err(|_| Error::status(400, "the body is a number of ms"))?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(format!("slept {ms}"))
}

/// The state this step can see, as a JSON object of strings.
fn show_state(_: Request) -> Result<Response> {
    let mut map = serde_json::Map::new();
    for key in state::keys()? {
        let value = state::get_string(&key)?.unwrap_or_default();
        map.insert(key, Value::String(value));
    }
    Response::json(&Value::Object(map))
}

/// The body is "<status> <message>": fails with that status.
fn fail(req: Request) -> Result<Response> {
    let text = req.text()?.to_string();
    let (status, message) = text.split_once(' ').unwrap_or((&text, "failed on purpose"));
    Err(Error::status(status.parse().unwrap_or(500), message))
}

/// Answers its body, with the body also in an `x-tag` header and status 202.
fn tag(req: Request) -> Result<Response> {
    let text = req.text()?.to_string();
    Ok(Response::new(text.clone()).header("x-tag", &text).status(202))
}

/// `{"topic": ..., "payload": ...}`: publishes, answers "published".
fn publish(req: Request) -> Result<&'static str> {
    let v: Value = req.json()?;
    let topic = v["topic"].as_str().ok_or_else(|| Error::status(400, "no topic"))?;
    msg::publish(topic, v["payload"].as_str().unwrap_or("").as_bytes())?;
    Ok("published")
}

/// `{"topic": ..., "payload": ..., "timeout_ms"?: ...}`: asks, answers the reply.
fn request(req: Request) -> Result<Vec<u8>> {
    let v: Value = req.json()?;
    let topic = v["topic"].as_str().ok_or_else(|| Error::status(400, "no topic"))?;
    let timeout = Duration::from_millis(v["timeout_ms"].as_u64().unwrap_or(2000));
    msg::request(topic, v["payload"].as_str().unwrap_or("").as_bytes(), timeout)
}

/// What started this pipeline, and the payload, as JSON.
fn whoami(req: Request) -> Result<Response> {
    Response::json(&json!({
        "trigger": req.trigger(),
        "source": req.source(),
        "body": String::from_utf8_lossy(req.body()),
    }))
}
