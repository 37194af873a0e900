//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51): SCRAM users,
//! as `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[password=...]'`
//! and `--describe` manage them.
//!
//! Describe answers from the metadata image (Kafka's ScramImage.describe): every user with a
//! credential when the request names none; a named user without one RESOURCE_NOT_FOUND; a user
//! named twice DUPLICATE_RESOURCE. Alter validates as Kafka's ScramControlManager: an empty user
//! name or too few / too many iterations UNACCEPTABLE_CREDENTIAL, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM, deleting a credential that does not exist RESOURCE_NOT_FOUND, a
//! user altered twice in one request DUPLICATE_RESOURCE; the valid alterations are committed
//! together as UserScramCredentialRecord / RemoveUserScramCredentialRecord. The client sends the
//! salted password; the broker keeps only the stored key and server key derived from it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{MetadataRecord, UserScramCredentialRecord};
use crate::security::authorizer::AclOperation;
use crate::security::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

pub fn describe(
    ctx: &RequestContext<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // DESCRIBE on the cluster (KafkaApis.handleDescribeUserScramCredentialsRequest).
    if !ctx.authorize_cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
    }
    let image = ctx.broker.catalog.image();
    let results = describe_image(
        &image,
        req.users
            .map(|u| u.into_iter().map(|n| n.name.to_string()).collect()),
    );
    DescribeUserScramCredentialsResponse::default()
        .with_error_message(None)
        .with_results(results)
}

fn result(user: &str, code: i16, message: Option<String>) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()))
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

fn describe_image(
    image: &MetadataImage,
    users: Option<Vec<String>>,
) -> Vec<DescribeUserScramCredentialsResult> {
    // (user, named more than once), in request order, or every user with a credential.
    let wanted: Vec<(String, bool)> = match users.filter(|u| !u.is_empty()) {
        None => image
            .scram
            .keys()
            .map(|(u, _)| u.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|u| (u, false))
            .collect(),
        Some(users) => {
            let mut out: Vec<(String, bool)> = Vec::new();
            for u in users {
                match out.iter_mut().find(|(n, _)| *n == u) {
                    Some(seen) => seen.1 = true,
                    None => out.push((u, false)),
                }
            }
            out
        }
    };
    wanted
        .into_iter()
        .map(|(user, duplicate)| {
            if duplicate {
                return result(
                    &user,
                    errors::DUPLICATE_RESOURCE,
                    Some(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}")),
                );
            }
            let infos: Vec<CredentialInfo> = [ScramMechanism::Sha256, ScramMechanism::Sha512]
                .into_iter()
                .filter_map(|m| {
                    let c = image.scram_credential(&user, m)?;
                    Some(
                        CredentialInfo::default()
                            .with_mechanism(m.type_id())
                            .with_iterations(c.iterations),
                    )
                })
                .collect();
            if infos.is_empty() {
                return result(
                    &user,
                    errors::RESOURCE_NOT_FOUND,
                    Some(format!("Attempt to describe a user credential that does not exist: {user}")),
                );
            }
            result(&user, errors::NONE, None).with_credential_infos(infos)
        })
        .collect()
}

/// One user's alteration, as validated.
enum Alteration {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

type ApiError = (i16, &'static str);

fn mechanism_of(user: &str, mechanism: i8) -> Result<ScramMechanism, ApiError> {
    if user.is_empty() {
        return Err((
            errors::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty",
        ));
    }
    ScramMechanism::from_type(mechanism).ok_or((
        errors::UNSUPPORTED_SASL_MECHANISM,
        "Unknown SCRAM mechanism",
    ))
}

pub fn alter(
    ctx: &RequestContext<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // ALTER on the cluster: else every user named fails (ControllerApis).
    let outcome = if ctx.authorize_cluster(AclOperation::Alter) {
        ctx.broker
            .catalog
            .change_image(|image| alter_image(image, &req))
    } else {
        let refused = |u| {
            let message = Some("Cluster authorization failed.".to_string());
            (u, errors::CLUSTER_AUTHORIZATION_FAILED, message)
        };
        Ok(users_named(&req).into_iter().map(refused).collect())
    };
    let results = match outcome {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "cannot commit SCRAM credentials");
            let code = errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR);
            users_named(&req)
                .into_iter()
                .map(|u| (u, code, Some(e.to_string())))
                .collect()
        }
    };
    let results = results
        .into_iter()
        .map(|(user, code, message)| {
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

type AlterResult = (String, i16, Option<String>);

/// Every user an alteration names, once.
fn users_named(req: &AlterUserScramCredentialsRequest) -> BTreeSet<String> {
    req.deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()))
        .collect()
}

/// ScramControlManager.alterCredentials on one image: the records to commit and each user's
/// result (the successful ones first, then the failed ones, as Kafka lists them).
fn alter_image(
    image: &MetadataImage,
    req: &AlterUserScramCredentialsRequest,
) -> (Vec<MetadataRecord>, Vec<AlterResult>) {
    // Each alteration checked on its own, deletions first as Kafka walks them.
    let deletions = req.deletions.iter().map(|d| {
        let user = d.name.as_str();
        let checked = mechanism_of(user, d.mechanism).and_then(|m| {
            image
                .scram_credential(user, m)
                .map(|_| Alteration::Delete(m))
                .ok_or((
                    errors::RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist",
                ))
        });
        (user, checked)
    });
    let upsertions = req.upsertions.iter().map(|u| {
        let user = u.name.as_str();
        let checked = mechanism_of(user, u.mechanism).and_then(|m| {
            if u.iterations < MIN_ITERATIONS {
                return Err((errors::UNACCEPTABLE_CREDENTIAL, "Too few iterations"));
            }
            if u.iterations > MAX_ITERATIONS {
                return Err((errors::UNACCEPTABLE_CREDENTIAL, "Too many iterations"));
            }
            let c =
                ScramCredential::from_salted_password(m, &u.salt, &u.salted_password, u.iterations);
            Ok(Alteration::Upsert(m, c))
        });
        (user, checked)
    });
    // A user altered twice fails as a whole, and stays failed.
    let mut valid: BTreeMap<String, Alteration> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut failed: Vec<(String, ApiError)> = Vec::new();
    for (user, checked) in deletions.chain(upsertions) {
        if failed.iter().any(|(u, _)| u == user) {
            continue;
        }
        if valid.remove(user).is_some() {
            failed.push((
                user.to_string(),
                (
                    errors::DUPLICATE_RESOURCE,
                    "A user credential cannot be altered twice in the same request",
                ),
            ));
            continue;
        }
        match checked {
            Ok(a) => {
                valid.insert(user.to_string(), a);
                order.push(user.to_string());
            }
            Err(e) => failed.push((user.to_string(), e)),
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::new();
    for user in order {
        let Some(a) = valid.remove(&user) else {
            continue;
        };
        records.push(match a {
            Alteration::Delete(m) => MetadataRecord::RemoveUserScramCredential {
                name: user.clone(),
                mechanism: m.type_id(),
            },
            Alteration::Upsert(m, c) => {
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name: user.clone(),
                    mechanism: m.type_id(),
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                    iterations: c.iterations,
                })
            }
        });
        results.push((user, errors::NONE, None));
    }
    for (user, (code, message)) in failed {
        results.push((user, code, Some(message.to_string())));
    }
    (records, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::replay_all;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use std::sync::Arc;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(&[7; 64]))
    }

    fn delete(user: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(mechanism)
    }

    fn codes(results: &[AlterResult]) -> Vec<(&str, i16)> {
        results.iter().map(|(u, c, _)| (u.as_str(), *c)).collect()
    }

    #[test]
    fn alter_validates_as_kafka_and_describe_reads_the_image() {
        let image = MetadataImage::empty();
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![delete("ghost", 1), delete("", 1)])
            .with_upsertions(vec![
                upsert("alice", 2, 8192),
                upsert("bob", 1, 4095),
                upsert("carol", 1, 16385),
                upsert("dave", 3, 4096),
                upsert("erin", 1, 4096),
                upsert("erin", 2, 4096),
            ]);
        let (records, results) = alter_image(&image, &req);
        assert_eq!(records.len(), 1);
        assert_eq!(
            codes(&results),
            vec![
                ("alice", errors::NONE),
                ("ghost", errors::RESOURCE_NOT_FOUND),
                ("", errors::UNACCEPTABLE_CREDENTIAL),
                ("bob", errors::UNACCEPTABLE_CREDENTIAL),
                ("carol", errors::UNACCEPTABLE_CREDENTIAL),
                ("dave", errors::UNSUPPORTED_SASL_MECHANISM),
                ("erin", errors::DUPLICATE_RESOURCE),
            ]
        );
        // The salted password is not stored, only what is derived from it.
        let MetadataRecord::UserScramCredential(r) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(r.salt, b"salt");
        assert_ne!(r.stored_key, vec![7; 64]);
        let image = replay_all(Arc::new(image), &records).unwrap();

        let d = describe_image(&image, None);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].user.as_str(), d[0].credential_infos[0].iterations),
            ("alice", 8192)
        );
        let d = describe_image(
            &image,
            Some(vec!["alice".into(), "nobody".into(), "alice".into()]),
        );
        assert_eq!(
            d.iter()
                .map(|r| (r.user.as_str(), r.error_code))
                .collect::<Vec<_>>(),
            vec![
                ("alice", errors::DUPLICATE_RESOURCE),
                ("nobody", errors::RESOURCE_NOT_FOUND)
            ]
        );

        // Deleting what exists.
        let req =
            AlterUserScramCredentialsRequest::default().with_deletions(vec![delete("alice", 2)]);
        let (records, results) = alter_image(&image, &req);
        assert_eq!(codes(&results), vec![("alice", errors::NONE)]);
        let image = replay_all(Arc::new(image), &records).unwrap();
        assert!(image.scram.is_empty());
    }
}
