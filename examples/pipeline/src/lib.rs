//! The functions of the order pipeline; `atoll.toml` composes them.

use atoll_sdk::{Error, Request, Response, Result, kv, log, msg, state};
use serde::{Deserialize, Serialize};

atoll_sdk::handlers! {
    "validate" => validate,
    "stock" => stock,
    "price" => price,
    "summary" => summary,
    "tally" => tally,
    "restock" => restock,
    "stats" => stats,
}

const CATALOGUE: &[(&str, u64)] = &[("kayak", 89_900), ("paddle", 4_500), ("lifejacket", 6_000)];

#[derive(Serialize, Deserialize)]
struct Order {
    item: String,
    qty: u32,
}

/// The request body, checked: a 400 says what is wrong.
fn validate(req: Request) -> Result<Response> {
    let order: Order = req
        .json()
        .map_err(|e| Error::status(400, format!("a bad order: {}", e.message())))?;
    if order.qty == 0 || order.qty > 100 {
        return Err(Error::status(400, "qty must be between 1 and 100"));
    }
    Response::json(&Order {
        item: order.item.trim().to_lowercase(),
        qty: order.qty,
    })
}

/// Takes the order's quantity from the stock, if there is that much; 404 for
/// an item the shop does not sell. The stock is never read and then written
/// (two orders could both see the last kayak): the quantity is taken in one
/// atomic step and given back if that went below zero.
fn stock(req: Request) -> Result<Response> {
    let order: Order = req.json()?;
    if !CATALOGUE.iter().any(|(name, _)| *name == order.item) {
        return Err(Error::status(404, format!("no such item: {}", order.item)));
    }
    let key = format!("stock:{}", order.item);
    let qty = i64::from(order.qty);
    let left = kv::increment(&key, -qty)?;
    let (reserved, left) = if left >= 0 {
        (true, left)
    } else {
        (false, kv::increment(&key, qty)?)
    };
    Response::json(&serde_json::json!({ "reserved": reserved, "left": left }))
}

/// The order's price in cents, from the catalogue (0 if unknown).
fn price(req: Request) -> Result<Response> {
    let order: Order = req.json()?;
    let unit = CATALOGUE.iter().find(|(n, _)| *n == order.item).map_or(0, |(_, p)| *p);
    Response::json(&serde_json::json!({ "unit_cents": unit, "total_cents": unit * order.qty as u64 }))
}

/// Puts the order, its availability and its cost together, and announces it.
fn summary(_: Request) -> Result<Response> {
    let order: Order = state::get_json("order")?.ok_or("no order in the state")?;
    let availability: serde_json::Value = state::get_json("availability")?.unwrap_or_default();
    let cost: serde_json::Value = state::get_json("cost")?.unwrap_or_default();
    // A failed stock step that the pipeline let through is {"error", "status", ...}.
    let accepted = availability["reserved"] == true;
    let reason = match (&availability["error"], accepted) {
        (serde_json::Value::String(e), _) => e.clone(),
        (_, true) => "ok".into(),
        (_, false) => "not enough in stock".into(),
    };
    let summary = serde_json::json!({
        "item": order.item,
        "qty": order.qty,
        "total_cents": cost["total_cents"],
        "accepted": accepted,
        "reason": reason,
    });
    if accepted {
        msg::publish("orders.created", summary.to_string().as_bytes())?;
        log::info(format!("order for {} x{} accepted", order.item, order.qty));
    }
    Ok(Response::json(&summary)?.status(if accepted { 201 } else { 409 }))
}

/// On `orders.created`: counts orders and remembers the latest.
fn tally(req: Request) -> Result<&'static str> {
    let n = kv::increment("orders", 1)?;
    kv::set("last-order", req.body())?;
    log::info(format!("order #{n} recorded"));
    Ok("tallied")
}

/// Every 10 s: refills every item's stock to `level` (from the schedule's
/// state). A refill, not an addition, so the stock stays the same size
/// however long the app has run and across restarts.
fn restock(req: Request) -> Result<String> {
    let level: i64 = req
        .text()?
        .trim()
        .parse()
        .map_err(|_| Error::msg("the level must be a number"))?;
    for (item, _) in CATALOGUE {
        kv::set(&format!("stock:{item}"), level.to_string().as_bytes())?;
    }
    log::debug(format!("refilled the stock to {level} of each item"));
    Ok(format!("restocked {level}"))
}

/// Orders so far, the latest one, and the stock.
fn stats(_: Request) -> Result<Response> {
    let stock: serde_json::Map<String, serde_json::Value> = CATALOGUE
        .iter()
        .map(|(item, _)| {
            let n: i64 = kv::get_string(&format!("stock:{item}"))
                .ok()
                .flatten()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (item.to_string(), n.into())
        })
        .collect();
    let last: serde_json::Value = kv::get("last-order")?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Response::json(&serde_json::json!({
        "orders": kv::get_string("orders")?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0),
        "last_order": last,
        "stock": stock,
    }))
}
