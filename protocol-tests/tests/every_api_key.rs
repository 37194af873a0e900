//! No client waits on an API gregor does not serve: every API key Kafka 4.4 defines gets an
//! answer or a closed connection, never silence. Kafka's SocketServer closes the connection on a
//! request it cannot parse or an API its listener does not enable, and a client whose connection
//! closes retries or fails at once; a request left unanswered makes it wait out its request
//! timeout (30-60 s) instead.
//!
//! Each key gets its own connection: advertised keys at their lowest advertised version, the
//! others at version 0, each with a header and an empty body (which ApiVersions v0 accepts and
//! every other API rejects). What each advertised API answers to a real request is checked per
//! version in all_versions.rs.
//!
//! The broker's own ApiVersions answer drives the walk, so `WALK_BOOTSTRAP=host:port` runs it
//! against another broker (how it was calibrated on Kafka 4.4).

mod common;

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use common::*;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};

/// The highest API key Kafka 4.4 defines (org.apache.kafka.common.protocol.ApiKeys); the
/// kafka-protocol crate's enum stops earlier, so the walk goes by number.
const KAFKA_4_4_LAST_API_KEY: i16 = 94;

#[tokio::test]
async fn every_api_key_gets_an_answer_or_a_close() -> Result<()> {
    let _gregor;
    let addr: SocketAddr = match std::env::var("WALK_BOOTSTRAP") {
        Ok(a) => a.parse().context("WALK_BOOTSTRAP")?,
        Err(_) => {
            let b = start_broker().await?;
            let a = b.addr;
            _gregor = b;
            a
        }
    };
    let advertised = Client::connect(addr)
        .await?
        .request(0, ApiVersionsRequest::default())
        .await?
        .api_keys;
    for key in 0..=KAFKA_4_4_LAST_API_KEY {
        let version = advertised
            .iter()
            .find(|k| k.api_key == key)
            .map_or(0, |k| k.min_version);
        // Header v2 (flexible) where the crate knows the version is flexible; v1 otherwise.
        let flexible = ApiKey::try_from(key).is_ok_and(|k| k.request_header_version(version) >= 2);
        let frame = if flexible {
            header_v2(key, version)
        } else {
            header_v1(key, version)
        };
        let mut c = Client::connect(addr).await?;
        c.send_frame(&frame).await?;
        // read_frame fails only when neither a frame nor a close came within the client's
        // timeout: that is the hang this test exists to catch.
        if let Err(e) = c.read_frame().await {
            bail!("key {key} v{version}: {e}");
        }
    }
    Ok(())
}
