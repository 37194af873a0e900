//! UpdateFeatures (key 57): `kafka-features.sh upgrade / downgrade / disable` and
//! Admin.updateFeatures. Validated as Kafka's controller does (`metadata::features::update`):
//! all updates or none, the first refusal as the top-level INVALID_UPDATE_VERSION with "The
//! update failed for all features since the following feature had an error: ..."; accepted
//! levels are committed as FeatureLevelRecords (unless validate_only), and per-feature results
//! come only with success and only up to v1 (QuorumController.updateFeatures).

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors;
use super::RequestContext;
use crate::metadata::features::{self, FeatureUpdate, SAFE_DOWNGRADE, UPGRADE};
use crate::security::authorizer::AclOperation;

/// v0 has allow_downgrade where v1 has upgrade_type.
const UPGRADE_TYPE_VERSION: i16 = 1;
/// From v2 the response carries no per-feature results.
const RESULTS_MAX_VERSION: i16 = 1;

pub fn handle(ctx: &RequestContext<'_>, req: UpdateFeaturesRequest) -> UpdateFeaturesResponse {
    // ALTER on the cluster (ControllerApis.handleUpdateFeatures); the error response has no
    // per-feature results (UpdateFeaturesResponse.createWithErrors).
    if !ctx.authorize_cluster(AclOperation::Alter) {
        return UpdateFeaturesResponse::default()
            .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "Cluster authorization failed.",
            )));
    }
    let updates: Vec<FeatureUpdate> = req
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            feature: u.feature.to_string(),
            level: u.max_version_level,
            upgrade_type: match (ctx.api_version >= UPGRADE_TYPE_VERSION, u.allow_downgrade) {
                (true, _) => u.upgrade_type,
                (false, true) => SAFE_DOWNGRADE,
                (false, false) => UPGRADE,
            },
        })
        .collect();
    let outcome = ctx.broker.catalog.change_image(|image| {
        match features::update(image, ctx.node_id, &updates) {
            Ok(records) if !req.validate_only => (records, Ok(())),
            Ok(_) => (Vec::new(), Ok(())),
            Err(why) => (Vec::new(), Err(why)),
        }
    });
    // No message on success (the crate's default is an empty one; Kafka's is null).
    let mut resp = UpdateFeaturesResponse::default().with_error_message(None);
    match outcome {
        Ok(Ok(())) => {
            if ctx.api_version <= RESULTS_MAX_VERSION {
                resp.results = req
                    .feature_updates
                    .iter()
                    .map(|u| {
                        UpdatableFeatureResult::default()
                            .with_feature(u.feature.clone())
                            .with_error_message(None)
                    })
                    .collect();
            }
        }
        Ok(Err(why)) => {
            resp.error_code = errors::INVALID_UPDATE_VERSION;
            resp.error_message = Some(StrBytes::from_string(format!(
                "The update failed for all features since the following feature had an error: \
                 {why}"
            )));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot commit feature levels");
            resp.error_code = errors::metadata_write_error_code(&e, errors::UNKNOWN_SERVER_ERROR);
            resp.error_message = Some(StrBytes::from_string(e.to_string()));
        }
    }
    resp
}
