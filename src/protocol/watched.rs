//! A request served while the test control plane watches (`admin`): a fault rule may fire on it
//! (`admin::faults`), and the request journal records it (`admin::journal`). `handle_frame`
//! comes here only when a rule is armed or the journal records.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::Decodable;

use super::{dispatch, error_response, named, Reply, RequestContext, Session};
use crate::admin::faults::{Action, Call, Fired};
use crate::admin::journal::Entry;

pub(super) async fn serve(
    ctx: &mut RequestContext<'_>,
    session: &mut Session,
    api: ApiKey,
    body: Bytes,
) -> Reply {
    let broker = Arc::clone(ctx.broker);
    let control = &broker.control;
    let version = ctx.api_version;
    let time_ms = broker.clock.now_ms();
    let named = named::named(&broker.catalog, api, version, &body);
    if control.journal.enabled() {
        ctx.answered = Some(parking_lot::Mutex::new(Vec::new()));
        if api == ApiKey::ApiVersions && version >= 3 {
            if let Ok(r) = ApiVersionsRequest::decode(&mut body.clone(), version) {
                session.client_software = Some((
                    r.client_software_name.to_string(),
                    r.client_software_version.to_string(),
                ));
            }
        }
    }
    let fired = match control.faults.armed() {
        true => control.faults.decide(&Call {
            api,
            version,
            client_id: &ctx.client_id,
            broker: ctx.node_id,
            named: &named,
        }),
        false => None,
    };
    let mut error_codes = None;
    let reply = match fired.as_ref().map(|f| &f.action) {
        None => run(ctx, api, body).await,
        Some(Action::Error(code)) => {
            error_codes = Some(vec![*code]);
            error_response::build(api, version, ctx.correlation_id, body, *code)
                .unwrap_or_else(|| Reply::Close(format!("{api:?} v{version}: cannot decode")))
        }
        Some(Action::Delay(d)) => {
            let reply = run(ctx, api, body).await;
            tokio::time::sleep(*d).await;
            reply
        }
        Some(Action::CloseBefore) => {
            Reply::Close("injected fault: close before the request".into())
        }
        Some(Action::CloseAfter) => {
            let _lost = run(ctx, api, body).await;
            Reply::Close("injected fault: close after the request, its answer lost".into())
        }
        Some(Action::BlackHole) => Reply::BlackHole,
    };
    if control.journal.enabled() {
        let answered = ctx
            .answered
            .take()
            .map(|m| m.into_inner())
            .unwrap_or_default();
        let outcome = match &reply {
            Reply::Frame(_) => "answered",
            Reply::Nothing => "no_answer",
            Reply::Close(_) | Reply::FrameThenClose(..) => "closed",
            Reply::BlackHole => "black_hole",
        };
        control.journal.record(Entry {
            time_ms,
            broker: ctx.node_id,
            connection_id: session.connection_id,
            peer: session.peer,
            client_id: ctx.client_id.clone(),
            client_software: session.client_software.clone(),
            api,
            api_version: version,
            correlation_id: ctx.correlation_id,
            named,
            error_codes: error_codes.unwrap_or(answered),
            outcome,
            fault: fired.map(|Fired { rule, action }| (rule, action.describe())),
        });
    }
    reply
}

async fn run(ctx: &RequestContext<'_>, api: ApiKey, body: Bytes) -> Reply {
    match dispatch(ctx, api, body).await {
        Ok(reply) => reply,
        Err(e) => Reply::Close(format!("{api:?} v{}: {e}", ctx.api_version)),
    }
}
