//! ApiVersions, version negotiation and framing: what Kafka answers, and when it closes the
//! connection instead.

mod common;

use anyhow::{ensure, Result};
use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Message};

fn advertised_table() -> Vec<(i16, i16, i16)> {
    let mut v: Vec<(i16, i16, i16)> = gregor::protocol::apis::APIS
        .iter()
        .map(|(k, r)| (*k as i16, r.min, r.max))
        .collect();
    v.sort_unstable();
    v
}

fn as_tuples(keys: &[ApiVersion]) -> Vec<(i16, i16, i16)> {
    let mut v: Vec<_> = keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    v.sort_unstable();
    v
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let mut r = ApiVersionsRequest::default();
    if version >= 3 {
        r = r
            .with_client_software_name(s("gregor-protocol-tests"))
            .with_client_software_version(s("0.1.0"));
    }
    r
}

/// A request frame body (no size prefix) with a v1 header: key, version, correlation id, client id.
fn raw_request(key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&key.to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(&correlation_id.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    b.extend_from_slice(body);
    b
}

#[tokio::test]
async fn every_version_advertises_exactly_the_table() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    for v in 0..=4 {
        let r = c.request(v, api_versions_request(v)).await?;
        ensure!(r.error_code == NONE, "v{v}: {r:?}");
        ensure!(
            as_tuples(&r.api_keys) == advertised_table(),
            "v{v}: advertised {:?}, table {:?}",
            as_tuples(&r.api_keys),
            advertised_table()
        );
        let mut keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
        keys.dedup();
        ensure!(keys.len() == r.api_keys.len(), "duplicate keys: {keys:?}");
    }
    Ok(())
}

#[tokio::test]
async fn advertised_versions_are_decodable_and_core_apis_present() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let r = c.request(4, api_versions_request(4)).await?;
    for k in &r.api_keys {
        let api = ApiKey::try_from(k.api_key)
            .map_err(|_| anyhow::anyhow!("advertised unknown key {}", k.api_key))?;
        let valid = api.valid_versions();
        ensure!(
            k.min_version <= k.max_version && k.max_version <= valid.max,
            "{api:?} {k:?} vs crate {valid:?}"
        );
    }
    let find = |key: i16| r.api_keys.iter().find(|k| k.api_key == key).cloned();
    // What every client needs first.
    let av = find(18).ok_or_else(|| anyhow::anyhow!("ApiVersions not advertised"))?;
    ensure!((av.min_version, av.max_version) == (0, 4), "{av:?}");
    let produce = find(0).ok_or_else(|| anyhow::anyhow!("Produce not advertised"))?;
    // KAFKA-18659: Produce is advertised from v0 although v0-2 are not served.
    ensure!(produce.min_version == 0, "{produce:?}");
    ensure!(produce.max_version <= ProduceRequest::VERSIONS.max);
    Ok(())
}

#[tokio::test]
async fn v3_rejects_invalid_client_software_name() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("bad name!"))
        .with_client_software_version(s("1.0"));
    let r = c.request(3, req).await?;
    ensure!(r.error_code == INVALID_REQUEST, "{r:?}");
    // Still usable.
    let r = c.request(3, api_versions_request(3)).await?;
    ensure!(r.error_code == NONE);
    Ok(())
}

#[tokio::test]
async fn future_version_gets_v0_unsupported_version_and_connection_stays() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    // ApiVersions v9 with a v2 (flexible) header and a body no version defines.
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&9i16.to_be_bytes());
    frame.extend_from_slice(&4242i32.to_be_bytes());
    frame.extend_from_slice(&(6i16).to_be_bytes());
    frame.extend_from_slice(b"client");
    frame.push(0); // no tagged fields
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x13, 0x37, 0x99]);
    c.send_frame(&frame).await?;
    let mut resp = c.read_frame().await?.expect("a response, not a close");
    // Header v0: just the correlation id; body v0.
    let header = ResponseHeader::decode(&mut resp, 0)?;
    ensure!(header.correlation_id == 4242, "{header:?}");
    let body = ApiVersionsResponse::decode(&mut resp, 0)?;
    ensure!(resp.is_empty(), "{} bytes left over", resp.len());
    ensure!(body.error_code == UNSUPPORTED_VERSION, "{body:?}");
    ensure!(as_tuples(&body.api_keys) == vec![(18, 0, 4)], "{body:?}");
    // The client then retries within the range on the same connection.
    let r = c.request(3, api_versions_request(3)).await?;
    ensure!(r.error_code == NONE && r.api_keys.len() > 1, "{r:?}");
    Ok(())
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() -> Result<()> {
    // Several requests written at once are answered in order.
    let b = start_broker().await?;
    let mut c = b.client().await?;
    let mut all = BytesMut::new();
    let mut ids = Vec::new();
    for v in [0i16, 1, 2, 3, 4, 2, 0] {
        let id = c.next_correlation_id();
        ids.push((id, v));
        all.extend_from_slice(&c.encode_request(v, id, &api_versions_request(v))?);
    }
    c.send_raw(&all).await?;
    for (id, v) in ids {
        let frame = c.read_frame().await?.expect("response");
        let r = decode_response::<ApiVersionsRequest>(frame, v, id)?;
        ensure!(r.error_code == NONE);
    }
    Ok(())
}

async fn assert_closes(b: &TestBroker, bytes: &[u8], what: &str) -> Result<()> {
    let mut c = b.client().await?;
    c.send_raw(bytes).await?;
    c.expect_closed()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    assert_serves(b).await
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn unknown_api_keys_close_the_connection() -> Result<()> {
    let b = start_broker().await?;
    for key in [99i16, 4, 5, 6, 7, 88, -1, i16::MAX] {
        assert_closes(
            &b,
            &framed(&raw_request(key, 0, 1, &[])),
            &format!("key {key}"),
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn known_but_unadvertised_api_closes_the_connection() -> Result<()> {
    let b = start_broker().await?;
    let advertised: Vec<i16> = advertised_table().iter().map(|t| t.0).collect();
    // OffsetCommit (8), DeleteRecords (21), DescribeConfigs (32) unless the broker grew them.
    for key in [8i16, 21, 32, 60] {
        if advertised.contains(&key) {
            continue;
        }
        assert_closes(
            &b,
            &framed(&raw_request(key, 0, 1, &[])),
            &format!("key {key}"),
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn malformed_frames_close_the_connection() -> Result<()> {
    let b = start_broker().await?;
    // Shorter than key + version + correlation id.
    for len in [0usize, 1, 2, 4, 7] {
        let body = vec![0u8; len];
        assert_closes(&b, &framed(&body), &format!("{len}-byte frame")).await?;
    }
    // Negative size prefix.
    assert_closes(&b, &(-1i32).to_be_bytes(), "size -1").await?;
    assert_closes(&b, &i32::MIN.to_be_bytes(), "size i32::MIN").await?;
    // Above socket.request.max.bytes (100 MiB by default): refused on the prefix alone.
    let too_big = (b.config.socket_request_max_bytes + 1) as i32;
    assert_closes(
        &b,
        &too_big.to_be_bytes(),
        "size above socket.request.max.bytes",
    )
    .await?;
    // A truncated header: ApiVersions v3 (header v2) whose client id claims more than is there.
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&100i16.to_be_bytes());
    body.extend_from_slice(b"abc");
    assert_closes(&b, &framed(&body), "truncated client id").await?;
    // A body that does not decode: Metadata v1 whose topic array ends early.
    let mut body = raw_request(3, 1, 9, &[]);
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&5i16.to_be_bytes());
    body.extend_from_slice(b"ab");
    assert_closes(&b, &framed(&body), "truncated Metadata body").await?;
    Ok(())
}

#[tokio::test]
async fn limit_is_configurable() -> Result<()> {
    let b = start_broker_with(|c| c.socket_request_max_bytes = 1000).await?;
    // A request of exactly 1000 bytes is read and answered (Metadata v4 naming one long topic).
    let mut c = b.client().await?;
    let frame_for = |c: &Client, len: usize| {
        let topic = "x".repeat(len);
        let req = MetadataRequest::default()
            .with_topics(metadata_topics(&[&topic]))
            .with_allow_auto_topic_creation(false);
        c.encode_request(4, 1, &req)
    };
    let base = frame_for(&c, 1)?.len() - 4 - 1;
    let mut frame = frame_for(&c, 1000 - base)?;
    ensure!(frame.len() == 1004, "frame is {} bytes", frame.len());
    c.send_raw(&frame).await?;
    let r = decode_response::<MetadataRequest>(c.read_frame().await?.expect("resp"), 4, 1)?;
    ensure!(
        r.topics.len() == 1 && r.topics[0].error_code != NONE,
        "{r:?}"
    );
    // 1001 bytes are not.
    frame.clear();
    frame.put_i32(1001);
    frame.extend_from_slice(&vec![0u8; 1001]);
    assert_closes(&b, &frame, "1001-byte frame").await
}

#[tokio::test]
async fn unserved_versions_close_the_connection() -> Result<()> {
    let b = start_broker().await?;
    let table = advertised_table();
    // Produce v0-2: advertised but not served (Kafka 4 closes).
    for v in 0..=2 {
        assert_closes(
            &b,
            &framed(&raw_request(0, v, 1, &[0, 0, 0, 0])),
            &format!("Produce v{v}"),
        )
        .await?;
    }
    // One past the top, and one below the bottom, of every advertised API except ApiVersions.
    for (key, min, max) in table {
        if key == 18 {
            continue;
        }
        let mut versions = vec![max + 1];
        if min > 0 {
            versions.push(min - 1);
        }
        for v in versions {
            // Use a real encoding where the crate has one so only the version is wrong.
            assert_closes(
                &b,
                &framed(&raw_request(key, v, 1, &[0; 16])),
                &format!("key {key} v{v}"),
            )
            .await?;
        }
    }
    // The brief's examples, spelled out.
    let mut c = b.client().await?;
    let frame = c.encode_request(12, 1, &MetadataRequest::default().with_topics(None))?;
    // Rewrite the version to 13 (same flexible header format).
    let mut frame = frame.to_vec();
    frame[6..8].copy_from_slice(&13i16.to_be_bytes());
    c.send_raw(&frame).await?;
    c.expect_closed().await?;
    assert_serves(&b).await
}

#[tokio::test]
async fn header_without_client_id_is_served() -> Result<()> {
    let b = start_broker().await?;
    let mut c = b.client().await?;
    c.client_id = None;
    let r = c.request(1, ApiVersionsRequest::default()).await?;
    ensure!(r.error_code == NONE);
    Ok(())
}

/// `--emulate-kafka-version 2.8`: ApiVersions advertises Kafka 2.8's versions narrowed to
/// gregor's, without features (a ZooKeeper-era broker had none), a v4 ApiVersions gets
/// KIP-511's answer with 2.8's range (0-3), and a request above 2.8's version is refused as one
/// above gregor's own is (the connection closes).
#[tokio::test]
async fn an_emulated_kafka_2_8_advertises_and_serves_only_2_8s_versions() -> Result<()> {
    use gregor::protocol::emulation::Release;
    let r28 = Release::named("2.8").unwrap();
    let b = start_broker_with(|c| c.emulate_kafka_version = Some(r28)).await?;
    let mut c = b.client().await?;
    let r = c.request(3, api_versions_request(3)).await?;
    ensure!(r.error_code == NONE, "{r:?}");
    let table = as_tuples(&r.api_keys);
    let expected: Vec<_> = gregor::protocol::apis::advertised(Some(r28))
        .map(|(k, v)| (k as i16, v.min, v.max))
        .collect();
    ensure!(table == expected, "{table:?}");
    for (api, max) in [(0, 9), (1, 12), (3, 11), (18, 3), (19, 7)] {
        ensure!(
            table.iter().any(|&(k, _, m)| k == api && m == max),
            "API {api}: {table:?}"
        );
    }
    // Not in 2.8: KIP-848 groups, share groups, DescribeTopicPartitions.
    for absent in [68, 69, 75, 76] {
        ensure!(
            table.iter().all(|&(k, _, _)| k != absent),
            "{absent}: {table:?}"
        );
    }
    ensure!(
        r.supported_features.is_empty() && r.finalized_features.is_empty(),
        "{r:?}"
    );

    // ApiVersions v4 (4.4's newest) is above 2.8's: KIP-511's answer, then v3 works.
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&4i16.to_be_bytes());
    frame.extend_from_slice(&77i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.push(0);
    frame.extend_from_slice(&[0, 0, 0]);
    c.send_frame(&frame).await?;
    let mut resp = c.read_frame().await?.expect("a response, not a close");
    ensure!(ResponseHeader::decode(&mut resp, 0)?.correlation_id == 77);
    let body = ApiVersionsResponse::decode(&mut resp, 0)?;
    ensure!(body.error_code == UNSUPPORTED_VERSION, "{body:?}");
    ensure!(as_tuples(&body.api_keys) == vec![(18, 0, 3)], "{body:?}");
    ensure!(c.request(3, api_versions_request(3)).await?.error_code == NONE);

    // Metadata v12 is gregor's and 4.4's, not 2.8's: closed, as gregor closes any version it
    // does not serve. The broker keeps serving.
    let mut m = b.client().await?;
    m.send_frame(&raw_request(3, 12, 5, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0]))
        .await?;
    m.expect_closed().await?;
    let mut ok = b.client().await?;
    ok.request(11, MetadataRequest::default()).await?;
    Ok(())
}

/// Emulating 3.9 keeps the KRaft features a 3.9 broker had (metadata.version) and drops the
/// ones that came with 4.0 (transaction.version, group.version), so a 4.4 client does not take
/// transactions V2 from it.
#[tokio::test]
async fn an_emulated_kafka_3_9_has_only_3_9s_features() -> Result<()> {
    use gregor::protocol::emulation::Release;
    let b = start_broker_with(|c| c.emulate_kafka_version = Release::named("3.9")).await?;
    let mut c = b.client().await?;
    let r = c.request(4, api_versions_request(4)).await?;
    let supported: Vec<String> = r
        .supported_features
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    let finalized: Vec<String> = r
        .finalized_features
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    ensure!(
        supported.contains(&"metadata.version".to_string()),
        "{supported:?}"
    );
    for newer in ["transaction.version", "group.version", "share.version"] {
        ensure!(
            !supported.iter().any(|n| n == newer),
            "{newer} in {supported:?}"
        );
        ensure!(
            !finalized.iter().any(|n| n == newer),
            "{newer} in {finalized:?}"
        );
    }
    // 3.9's EndTxn is v4 (transactions V2 is v5, 4.0's).
    ensure!(
        as_tuples(&r.api_keys)
            .iter()
            .any(|&(k, _, m)| k == 26 && m == 4),
        "{:?}",
        r.api_keys
    );
    Ok(())
}
