//! DescribeLogDirs (key 35): the one data directory, with the size of each partition's log.
//! `topics` null means every topic; requested topics or partitions that do not exist are left out,
//! as Kafka does. Volume sizes (v4) are reported as unknown (-1).

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::metadata::Topic;
use crate::security::authorizer::AclOperation;

pub fn handle(ctx: &RequestContext<'_>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let catalog = &ctx.broker.catalog;
    // DESCRIBE on the cluster, else no directories (and the error from v3).
    if !ctx.authorize_cluster(AclOperation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(super::errors::CLUSTER_AUTHORIZATION_FAILED);
    }
    let topics: Vec<DescribeLogDirsTopic> = match req.topics {
        None => catalog.all().iter().map(|t| describe(t, None)).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                let t = catalog.get(w.topic.as_str())?;
                Some(describe(&t, Some(&w.partitions)))
            })
            .filter(|t| !t.partitions.is_empty())
            .collect(),
    };
    let dir = std::fs::canonicalize(catalog.data_dir())
        .unwrap_or_else(|_| catalog.data_dir().to_path_buf());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics);
    if ctx.api_version >= 4 {
        result.total_bytes = -1;
        result.usable_bytes = -1;
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

fn describe(t: &Topic, only: Option<&Vec<i32>>) -> DescribeLogDirsTopic {
    let partitions = t
        .partitions
        .iter()
        .filter(|p| only.is_none_or(|o| o.contains(&p.index)))
        .map(|p| {
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(p.with_log(|l| l.size_bytes()) as i64)
                .with_offset_lag(0)
                .with_is_future_key(false)
        })
        .collect();
    DescribeLogDirsTopic::default()
        .with_name(TopicName(StrBytes::from_string(t.name.clone())))
        .with_partitions(partitions)
}
