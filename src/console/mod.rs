//! The web console (`/ui` on the admin listener): what is in the broker, for the developers who
//! run it beside their tests and the operators who run it for real.
//!
//! | page                                   | shows                                            |
//! |----------------------------------------|--------------------------------------------------|
//! | `/ui`                                  | the cluster, its brokers and listeners           |
//! | `/ui/topics`                           | topics: partitions, records, size                |
//! | `/ui/topics/{t}`                       | partitions (leader, ISR, offsets, size), configs, a produce form |
//! | `/ui/topics/{t}/partitions/{p}`        | records from `offset=`, `timestamp=` (ms or ISO), `limit=`, as `format=text|json|hex` |
//! | `POST /ui/topics/{t}/produce`          | produces one record (form), then shows it        |
//! | `/ui/groups`, `/ui/groups/{g}`         | groups of both protocols; members, assignments, committed offsets, lag |
//! | `/ui/journal`, `/ui/faults`            | the test control plane's request journal and fault rules |
//!
//! Pages are server-rendered HTML (see `html`): the read-only views work without JavaScript. The
//! console has the admin listener's authority, as `/metrics` and `/v1/reset` do, so the listener
//! is what to protect (`--admin-token`: a browser logs in once at `/ui/login` and keeps the token
//! in an HttpOnly, SameSite=Strict cookie). Producing is the one thing the console does as a
//! Kafka client: it goes through the Produce handler as principal `User:gregor-console`, so with
//! an authorizer that principal needs WRITE on the topic, like any producer.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DescribeGroupsRequest, GroupId, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

use crate::broker::Broker;
use crate::http::{HttpRequest, HttpResponse};
use crate::metrics::CommittedOffset;
use crate::protocol::RequestContext;
use crate::server::nodes::Nodes;
use html::{escape, link, num, pre, raw, td, url_part, Table};

pub mod html;
pub mod records;

/// The principal the console produces as.
pub const PRINCIPAL: &str = "User:gregor-console";
/// The cookie a logged-in browser sends the admin token in.
pub const TOKEN_COOKIE: &str = "gregor_admin_token";
const HTML: &str = "text/html; charset=utf-8";
/// Produce's version the console sends (v11: topics by name, not a transactional version).
const PRODUCE_VERSION: i16 = 11;

/// Answers a console request (`req.path()` starts with `ui`).
pub async fn respond(nodes: &Nodes, req: HttpRequest) -> HttpResponse {
    let broker = nodes.broker();
    let path = req.path();
    let result = match (&req.method, &path[1..]) {
        (&Method::GET, []) => Ok(overview(nodes).await),
        (&Method::GET, ["topics"]) => Ok(topics(broker)),
        (&Method::GET, ["topics", t]) => topic(broker, t, req.param("produced")),
        (&Method::GET, ["topics", t, "partitions", p]) => browse(broker, t, p, &req).await,
        (&Method::POST, ["topics", t, "produce"]) => return produce(broker, t, &req).await,
        (&Method::GET, ["groups"]) => Ok(groups(broker)),
        (&Method::GET, ["groups", g]) => group(broker, g),
        (&Method::GET, ["journal"]) => journal(broker, &req),
        (&Method::GET, ["faults"]) => Ok(faults(broker)),
        (&Method::GET, ["login"]) => Ok(login_page(None)),
        (_, []) | (_, ["topics" | "groups" | "journal" | "faults" | "login", ..]) => Err((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here", req.method),
        )),
        _ => Err((StatusCode::NOT_FOUND, "No such page.".to_string())),
    };
    match result {
        Ok(body) => HttpResponse::text(StatusCode::OK, HTML, body),
        Err((status, message)) => error_page(status, &message),
    }
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!("<p class=\"err\" id=\"error\">{}</p>", escape(message));
    let title = status.canonical_reason().unwrap_or("Error");
    HttpResponse::text(status, HTML, html::page(title, &body))
}

type Page = Result<String, (StatusCode, String)>;

fn not_found(what: String) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, what)
}

fn bad_request(what: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, what)
}

/// The login form (only needed with `--admin-token`); `error` after a wrong token.
pub fn login_page(error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"err\" id=\"error\">{}</p>", escape(e))
    });
    let form = "<form method=\"post\" action=\"/ui/login\"><label>Admin token \
                <input type=\"password\" name=\"token\" autofocus></label>\
                <button type=\"submit\">Log in</button></form>";
    html::page("Log in", &format!("{error}{form}"))
}

async fn overview(nodes: &Nodes) -> String {
    let broker = nodes.broker();
    let mut brokers = Table::new("brokers", &["Id", "Advertised", "Listening on", "State"]);
    for n in nodes.status().await {
        let state = if n.running { "running" } else { "stopped" };
        brokers.row(vec![
            num(n.id),
            td(format!("{}:{}", n.host, n.port)),
            td(n.listen.to_string()),
            td(state),
        ]);
    }
    let mut listeners = Table::new(
        "listeners",
        &["Broker", "Listener", "Protocol", "Host", "Port"],
    );
    for (id, endpoints) in &broker.endpoints {
        for e in endpoints {
            listeners.row(vec![
                num(id),
                td(&e.listener),
                td(format!("{:?}", e.security_protocol)),
                td(&e.host),
                num(e.port),
            ]);
        }
    }
    let all = broker.catalog.all();
    let partitions: usize = all.iter().map(|t| t.partitions.len()).sum();
    let summary = format!(
        "<table id=\"summary\"><tr><th>Cluster id</th><td>{}</td></tr>\
         <tr><th>Topics</th><td class=\"n\">{}</td></tr>\
         <tr><th>Partitions</th><td class=\"n\">{}</td></tr>\
         <tr><th>Groups</th><td class=\"n\">{}</td></tr></table>",
        escape(&broker.cluster_id),
        all.len(),
        partitions,
        broker.groups.list_groups().len(),
    );
    let body = format!(
        "{summary}<h2>Brokers</h2>{}<h2>Listeners</h2>{}",
        brokers.render(),
        listeners.render()
    );
    html::page("Cluster", &body)
}

fn topic_href(name: &str) -> String {
    format!("/ui/topics/{}", url_part(name))
}

fn topics(broker: &Broker) -> String {
    let mut table = Table::new(
        "topics",
        &[
            "Topic",
            "Partitions",
            "Replication",
            "Records",
            "Size (bytes)",
            "Internal",
        ],
    );
    let image = broker.catalog.image();
    let mut all = broker.catalog.all();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for t in all {
        let (mut records, mut size) = (0i64, 0u64);
        for p in &t.partitions {
            p.with_log(|l| {
                records += l.high_watermark() - l.log_start_offset();
                size += l.size_bytes();
            });
        }
        let rf = (image.topics.get_by_name(&t.name))
            .and_then(|ti| ti.partitions.values().next().map(|r| r.replicas.len()))
            .unwrap_or(1);
        table.row(vec![
            raw(link(&topic_href(&t.name), &t.name)),
            num(t.partitions.len()),
            num(rf),
            num(records),
            num(size),
            td(if t.is_internal() { "yes" } else { "" }),
        ]);
    }
    html::page("Topics", &table.render())
}

fn ids(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}

fn topic(broker: &Broker, name: &str, produced: Option<&str>) -> Page {
    let t = (broker.catalog.get(name)).ok_or_else(|| not_found(format!("No topic {name}.")))?;
    let image = broker.catalog.image();
    let registered = image.topics.get_by_name(name);
    let mut parts = Table::new(
        "partitions",
        &[
            "Partition",
            "Leader",
            "Replicas",
            "In sync",
            "Start offset",
            "High watermark",
            "End offset",
            "Size (bytes)",
            "Segments",
        ],
    );
    for p in &t.partitions {
        let reg = registered.and_then(|r| r.partitions.get(&p.index));
        let (start, hw, end, size, segments) = p.with_log(|l| {
            let size = l.size_bytes();
            let end = l.log_end_offset();
            (
                l.log_start_offset(),
                l.high_watermark(),
                end,
                size,
                l.segment_count(),
            )
        });
        let href = format!("{}/partitions/{}", topic_href(name), p.index);
        parts.row(vec![
            raw(link(&href, &p.index.to_string())),
            num(reg.map_or(-1, |r| r.leader)),
            td(reg.map_or(String::new(), |r| ids(&r.replicas))),
            td(reg.map_or(String::new(), |r| ids(&r.isr))),
            num(start),
            num(hw),
            num(end),
            num(size),
            num(segments),
        ]);
    }
    let mut configs = Table::new("configs", &["Config", "Value", "Source"]);
    let layers = broker.dynamic.layers();
    for c in crate::config::describe::describe_topic(&broker.config, &layers, &t.configs) {
        let value = match (c.sensitive, c.value) {
            (true, _) => "(sensitive)".to_string(),
            (false, v) => v.unwrap_or_default(),
        };
        configs.row(vec![td(c.name), td(value), td(format!("{:?}", c.source))]);
    }
    let notice = produced.map_or(String::new(), |m| {
        format!("<p class=\"ok\" id=\"produced\">{}</p>", escape(m))
    });
    let form = if t.is_internal() {
        String::new()
    } else {
        format!(
            "<h2>Produce a record</h2><form id=\"produce\" method=\"post\" action=\"{}/produce\">\
             <label>Partition <input name=\"partition\" size=\"4\" placeholder=\"by key\"></label>\
             <label>Key <input name=\"key\" size=\"40\"></label>\
             <label>Value <textarea name=\"value\"></textarea></label>\
             <label>Headers, one <code>name=value</code> per line \
             <textarea name=\"headers\"></textarea></label>\
             <label><input type=\"checkbox\" name=\"tombstone\" value=\"true\"> \
             No value (a tombstone)</label>\
             <button type=\"submit\">Produce</button></form>",
            escape(&topic_href(name))
        )
    };
    let body = format!(
        "{notice}<p>Topic id {}</p><h2>Partitions</h2>{}{form}<h2>Configs</h2>{}",
        t.topic_id,
        parts.render(),
        configs.render()
    );
    Ok(html::page(&format!("Topic {name}"), &body))
}

/// A timestamp as ms since the epoch or as UTC date and time (`2026-12-06T18:00:00Z`, the
/// seconds' fraction and the `Z` optional).
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse() {
        return Some(ms);
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, clock) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut c = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (c.next()??, c.next()??, c.next().unwrap_or(Some(0))?);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let valid = (1..=12).contains(&mo) && (1..=31).contains(&day) && h < 24 && mi < 60 && sec < 61;
    let days = days_from_civil(y, mo, day);
    valid.then(|| ((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ms since the epoch as UTC date and time with milliseconds.
fn iso(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // civil_from_days, the inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

async fn browse(broker: &Arc<Broker>, name: &str, p: &str, req: &HttpRequest) -> Page {
    use records::{Format, From};
    let t = (broker.catalog.get(name)).ok_or_else(|| not_found(format!("No topic {name}.")))?;
    let index: i32 = p
        .parse()
        .map_err(|_| bad_request(format!("Bad partition '{p}'.")))?;
    let partition = Arc::clone(
        t.partition(index)
            .ok_or_else(|| not_found(format!("No partition {index} of {name}.")))?,
    );
    let nonempty = |k: &str| req.param(k).filter(|v| !v.trim().is_empty());
    let format = match nonempty("format") {
        None => Format::default(),
        Some(f) => Format::parse(f).ok_or_else(|| bad_request(format!("Bad format '{f}'.")))?,
    };
    let limit = match nonempty("limit") {
        None => records::DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse()
            .map_err(|_| bad_request(format!("Bad limit '{l}'.")))?,
    };
    let from = match (nonempty("offset"), nonempty("timestamp")) {
        (Some(o), _) => From::Offset(
            o.trim()
                .parse()
                .map_err(|_| bad_request(format!("Bad offset '{o}'.")))?,
        ),
        (None, Some(ts)) => From::Timestamp(
            parse_timestamp(ts.trim())
                .ok_or_else(|| bad_request(format!("Bad timestamp '{ts}'.")))?,
        ),
        (None, None) => From::Earliest,
    };
    // File reads: off the async workers.
    let page =
        crate::server::background::spawn_blocking(move || records::browse(&partition, from, limit))
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let here = format!("{}/partitions/{index}", topic_href(name));
    let mut table = Table::new(
        "records",
        &["Offset", "Timestamp", "Key", "Value", "Headers"],
    );
    for r in &page.records {
        let bytes = |b: &Option<bytes::Bytes>| match b {
            Some(b) => pre(&format.show(b)),
            None => "<i>null</i>".to_string(),
        };
        let headers = (r.headers.iter())
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={}", format.show(v)),
                None => format!("{k} (null)"),
            })
            .collect::<Vec<_>>()
            .join("\n");
        table.row(vec![
            num(r.offset),
            td(format!("{} ({})", iso(r.timestamp), r.timestamp_type)),
            raw(bytes(&r.key)),
            raw(bytes(&r.value)),
            raw(pre(&headers)),
        ]);
    }
    let option = |f: Format| {
        let selected = if f == format { " selected" } else { "" };
        format!("<option{selected}>{}</option>", f.name())
    };
    let form = format!(
        "<form id=\"browse\" method=\"get\" action=\"{}\">\
         <label>From offset <input name=\"offset\" size=\"10\" value=\"{}\"></label>\
         <label>or from timestamp (ms or ISO 8601) <input name=\"timestamp\" size=\"24\"></label>\
         <label>Records <input name=\"limit\" size=\"4\" value=\"{}\"></label>\
         <label>Show as <select name=\"format\">{}{}{}</select></label>\
         <button type=\"submit\">Show</button></form>",
        escape(&here),
        page.from,
        limit.clamp(1, records::MAX_LIMIT),
        option(Format::Text),
        option(Format::Json),
        option(Format::Hex),
    );
    let next = page.next.map_or(String::new(), |n| {
        let href = format!("{here}?offset={n}&limit={limit}&format={}", format.name());
        format!("<p>{}</p>", link(&href, "Next records"))
    });
    let body = format!(
        "<p>{} · log start offset {} · high watermark {}</p>{form}{}{next}",
        link(&topic_href(name), name),
        page.log_start_offset,
        page.high_watermark,
        table.render(),
    );
    Ok(html::page(&format!("{name} partition {index}"), &body))
}

/// The console's own request context for `api` (see `PRINCIPAL`), sent to broker `node_id`.
fn context(broker: &Arc<Broker>, api: ApiKey, version: i16, node_id: i32) -> RequestContext<'_> {
    RequestContext::internal(broker, api, version, node_id, "gregor-console", PRINCIPAL)
}

/// The broker leading `topic`'s partition (the one a Produce must be sent to).
fn leader_of(broker: &Broker, topic: &str, partition: i32) -> i32 {
    let image = broker.catalog.image();
    (image.topics.get_by_name(topic))
        .and_then(|t| t.partitions.get(&partition).map(|r| r.leader))
        .unwrap_or(broker.node_id)
}

/// The form's record and partition, or what is wrong with the form.
fn record_of(
    form: &[(String, String)],
    partitions: i32,
) -> Result<(i32, records::NewRecord), String> {
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let key = field("key").filter(|k| !k.is_empty()).map(str::to_string);
    let tombstone = field("tombstone") == Some("true");
    let value = (!tombstone).then(|| field("value").unwrap_or("").to_string());
    let mut headers = Vec::new();
    for line in field("headers").unwrap_or("").lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("Header line '{line}' is not name=value."))?;
        headers.push((k.trim().to_string(), v.to_string()));
    }
    let partition = match field("partition").map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.parse().map_err(|_| format!("Bad partition '{p}'."))?,
        None => match &key {
            Some(k) => records::partition_for_key(k.as_bytes(), partitions),
            // Kafka's producer spreads keyless records; the console sends them to partition 0.
            None => 0,
        },
    };
    if !(0..partitions).contains(&partition) {
        return Err(format!(
            "No partition {partition}: the topic has {partitions}."
        ));
    }
    Ok((
        partition,
        records::NewRecord {
            key,
            value,
            headers,
            timestamp: None,
        },
    ))
}

async fn produce(broker: &Arc<Broker>, name: &str, req: &HttpRequest) -> HttpResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let Some(t) = broker.catalog.get(name) else {
        return error_page(StatusCode::NOT_FOUND, &format!("No topic {name}."));
    };
    let (partition, record) = match record_of(&req.form(), t.partitions.len() as i32) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let batch = match records::batch_of(std::slice::from_ref(&record), broker.clock.now_ms()) {
        Ok(b) => b,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let node = leader_of(broker, name, partition);
    let ctx = context(broker, ApiKey::Produce, PRODUCE_VERSION, node);
    let resp = crate::protocol::produce::handle(&ctx, request).await;
    let answer = resp
        .responses
        .first()
        .and_then(|t| t.partition_responses.first());
    match answer {
        Some(p) if p.error_code == 0 => {
            let message = format!(
                "Produced to partition {partition} at offset {}.",
                p.base_offset
            );
            let href = format!("{}?produced={}", topic_href(name), url_part(&message));
            HttpResponse::text(StatusCode::SEE_OTHER, HTML, String::new()).with_location(&href)
        }
        Some(p) => {
            let code = crate::protocol::errors::name_of(p.error_code);
            let detail = p
                .error_message
                .as_ref()
                .map_or(String::new(), |m| format!(": {m}"));
            error_page(
                StatusCode::CONFLICT,
                &format!("The broker refused the record: {code}{detail}"),
            )
        }
        None => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No answer for the partition.",
        ),
    }
}

/// Each group's committed offsets with their lag.
fn offsets_by_group(broker: &Broker) -> BTreeMap<String, Vec<CommittedOffset>> {
    let mut out: BTreeMap<String, Vec<CommittedOffset>> = BTreeMap::new();
    for c in crate::metrics::committed_offsets(broker) {
        out.entry(c.group.clone()).or_default().push(c);
    }
    out
}

fn group_href(id: &str) -> String {
    format!("/ui/groups/{}", url_part(id))
}

fn groups(broker: &Broker) -> String {
    let offsets = offsets_by_group(broker);
    let mut table = Table::new(
        "groups",
        &["Group", "Type", "State", "Protocol type", "Lag"],
    );
    for g in broker.groups.list_groups() {
        let lag: i64 = (offsets.get(&g.group_id).into_iter().flatten())
            .filter_map(CommittedOffset::lag)
            .sum();
        table.row(vec![
            raw(link(&group_href(&g.group_id), &g.group_id)),
            td(g.group_type),
            td(g.state),
            td(&g.protocol_type),
            num(lag),
        ]);
    }
    html::page("Groups", &table.render())
}

/// "topic-0, topic-1" from a consumer protocol assignment (classic groups), or why not.
fn classic_assignment(bytes: &[u8]) -> String {
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    if bytes.len() < 2 {
        return String::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut rest = bytes::Bytes::copy_from_slice(&bytes[2..]);
    match ConsumerProtocolAssignment::decode(&mut rest, version.clamp(0, 3)) {
        Ok(a) => (a.assigned_partitions.iter())
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| format!("{}-{p}", t.topic.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => format!("({} bytes)", bytes.len()),
    }
}

fn group(broker: &Arc<Broker>, id: &str) -> Page {
    let listed = broker.groups.list_groups();
    let g = (listed.iter().find(|g| g.group_id == id))
        .ok_or_else(|| not_found(format!("No group {id}.")))?;
    let coordinator = leader_of(
        broker,
        crate::group::coordinator::OFFSETS_TOPIC,
        broker.groups.partition_of(id),
    );
    let group_id = GroupId(StrBytes::from_string(id.to_string()));
    let mut members = Table::new(
        "members",
        &[
            "Member",
            "Instance",
            "Client",
            "Host",
            "Assigned partitions",
        ],
    );
    if g.group_type == "consumer" {
        let ctx = context(broker, ApiKey::ConsumerGroupDescribe, 0, coordinator);
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id]);
        let resp = crate::protocol::consumer_group_describe::handle(&ctx, req);
        for m in resp.groups.iter().flat_map(|g| &g.members) {
            let assigned = (m.assignment.topic_partitions.iter())
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| format!("{}-{p}", t.topic_name.as_str()))
                })
                .collect::<Vec<_>>()
                .join(", ");
            members.row(vec![
                td(m.member_id.as_str()),
                td(m.instance_id.as_ref().map_or("", |s| s.as_str())),
                td(m.client_id.as_str()),
                td(m.client_host.as_str()),
                td(assigned),
            ]);
        }
    } else {
        let ctx = context(broker, ApiKey::DescribeGroups, 5, coordinator);
        let req = DescribeGroupsRequest::default().with_groups(vec![group_id]);
        let resp = crate::protocol::describe_groups::handle(&ctx, req);
        for m in resp.groups.iter().flat_map(|g| &g.members) {
            members.row(vec![
                td(m.member_id.as_str()),
                td(m.group_instance_id.as_ref().map_or("", |s| s.as_str())),
                td(m.client_id.as_str()),
                td(m.client_host.as_str()),
                td(classic_assignment(&m.member_assignment)),
            ]);
        }
    }
    let mut offsets = Table::new(
        "offsets",
        &["Topic", "Partition", "Committed", "High watermark", "Lag"],
    );
    for c in offsets_by_group(broker).remove(id).unwrap_or_default() {
        offsets.row(vec![
            raw(link(&topic_href(&c.topic), &c.topic)),
            num(c.partition),
            num(c.committed),
            c.high_watermark.map_or(td(""), num),
            c.lag().map_or(td(""), num),
        ]);
    }
    let body = format!(
        "<p>Type {} · state {} · protocol type {}</p><h2>Members</h2>{}\
         <h2>Committed offsets</h2>{}",
        escape(g.group_type),
        escape(g.state),
        escape(&g.protocol_type),
        members.render(),
        offsets.render()
    );
    Ok(html::page(&format!("Group {id}"), &body))
}

/// A table of JSON objects: a column per key, in order of first appearance.
fn json_table(id: &'static str, values: &[Value]) -> String {
    let mut keys: Vec<String> = Vec::new();
    for v in values {
        for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut table = Table::with_head(id, keys.clone());
    for v in values {
        let cells = (keys.iter())
            .map(|k| match v.get(k) {
                None | Some(Value::Null) => td(""),
                Some(Value::String(s)) => td(s),
                Some(other) => td(other.to_string()),
            })
            .collect();
        table.row(cells);
    }
    table.render()
}

fn journal(broker: &Broker, req: &HttpRequest) -> Page {
    let control = &broker.control;
    if !control.journal.enabled() {
        let body = "<p>The journal is off (it records while the admin listener is on and \
                    <code>--journal-size</code> is above 0).</p>";
        return Ok(html::page("Request journal", body));
    }
    let mut q = crate::admin::journal::Query {
        limit: Some(100),
        ..Default::default()
    };
    if let Some(c) = req.param("client_id").filter(|c| !c.is_empty()) {
        q.client_id = Some(c.to_string());
    }
    if let Some(a) = req.param("api").filter(|a| !a.is_empty()) {
        let api =
            crate::admin::faults::parse_api(&Value::String(a.to_string())).map_err(bad_request)?;
        q.api = Some(api);
    }
    if let Some(l) = req.param("limit").filter(|l| !l.is_empty()) {
        q.limit = Some(
            l.parse()
                .map_err(|_| bad_request(format!("Bad limit '{l}'.")))?,
        );
    }
    let form = format!(
        "<form id=\"filter\" method=\"get\" action=\"/ui/journal\">\
         <label>Client id <input name=\"client_id\" value=\"{}\"></label>\
         <label>API <input name=\"api\" value=\"{}\"></label>\
         <label>Most recent <input name=\"limit\" size=\"5\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button></form>",
        escape(req.param("client_id").unwrap_or("")),
        escape(req.param("api").unwrap_or("")),
        q.limit.unwrap_or(100),
    );
    let entries = control.journal.query(&q);
    let body = format!("{form}{}", json_table("journal", &entries));
    Ok(html::page("Request journal", &body))
}

fn faults(broker: &Broker) -> String {
    let rules = match broker.control.faults.list() {
        Value::Array(v) => v,
        _ => Vec::new(),
    };
    let body = format!(
        "<p>Rules are armed with <code>POST /v1/faults</code>.</p>{}",
        json_table("faults", &rules)
    );
    html::page("Fault rules", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_produce_form_becomes_a_record() {
        let (p, r) = record_of(
            &form(&[
                ("partition", "2"),
                ("key", "k"),
                ("value", "v"),
                ("headers", "a=1\r\nb=x=y\n"),
            ]),
            3,
        )
        .unwrap();
        assert_eq!(p, 2);
        assert_eq!(r.key.as_deref(), Some("k"));
        assert_eq!(r.value.as_deref(), Some("v"));
        assert_eq!(
            r.headers,
            [("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        // By key, as Kafka's partitioner: murmur2("21") & 0x7fffffff % 7.
        let (p, _) = record_of(&form(&[("key", "21")]), 7).unwrap();
        assert_eq!(p, ((-973932308i32 & 0x7fff_ffff) % 7));
        let (p, r) = record_of(&form(&[("tombstone", "true"), ("value", "ignored")]), 3).unwrap();
        assert_eq!((p, r.value), (0, None));
        for bad in [
            form(&[("partition", "3")]),
            form(&[("partition", "x")]),
            form(&[("headers", "no-equals")]),
        ] {
            assert!(record_of(&bad, 3).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_in_ms_or_rfc3339() {
        assert_eq!(parse_timestamp("1000"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2026-13-01T00:00:00Z"), None);
        // 2026-12-06T18:30:15.250Z, and back.
        let t = 1_765_045_815_250;
        assert_eq!(iso(t), "2025-12-06T18:30:15.250Z");
        assert_eq!(parse_timestamp("2025-12-06T18:30:15.25Z"), Some(t));
        assert_eq!(parse_timestamp("2025-12-06 18:30:15.250"), Some(t));
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn json_tables_escape_and_union_the_keys() {
        let html = json_table(
            "j",
            &[serde_json::json!({"a": "<b>"}), serde_json::json!({"c": 1})],
        );
        assert!(html.contains("<th>a</th><th>c</th>"));
        assert!(html.contains("<td>&lt;b&gt;</td><td></td>"));
    }
}
