//! The synthetic series Lookout's load generator sends and its benchmarks store: shaped like
//! a fleet of node-exporter-style hosts, so label sizes and sharing are realistic. Series `i`
//! has one of [`METRIC_NAMES`], a `cpu` of 0..20, an `instance` per 1,000 series and
//! `job="node"`. One definition, so `lookout loadgen metrics` (bench/metrics.py) and the tsdb's
//! memory bench measure the same series.

/// Metric names, cycled through by series index.
pub const METRIC_NAMES: [&str; 50] = [
    "node_cpu_seconds_total",
    "node_memory_MemFree_bytes",
    "node_memory_Cached_bytes",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_io_time_seconds_total",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_context_switches_total",
    "node_intr_total",
    "node_forks_total",
    "node_procs_running",
    "node_procs_blocked",
    "node_sockstat_TCP_inuse",
    "node_netstat_Tcp_ActiveOpens",
    "http_requests_total",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "http_response_size_bytes_sum",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "go_goroutines",
    "go_gc_duration_seconds_sum",
    "go_memstats_alloc_bytes",
    "go_memstats_heap_inuse_bytes",
    "grpc_server_handled_total",
    "grpc_server_started_total",
    "db_queries_total",
    "db_query_errors_total",
    "db_connections_open",
    "cache_hits_total",
    "cache_misses_total",
    "queue_depth",
    "queue_processed_total",
    "jobs_failed_total",
    "jobs_succeeded_total",
    "kafka_consumer_lag",
    "kafka_messages_consumed_total",
    "redis_commands_total",
    "redis_keys",
    "nginx_connections_active",
    "nginx_requests_total",
    "app_temperature_celsius",
    "app_build_info",
];

/// `cpu` values per metric name on one host.
pub const CPUS: u64 = 20;

/// Series per simulated host: every metric name for every `cpu`.
pub const SERIES_PER_INSTANCE: u64 = METRIC_NAMES.len() as u64 * CPUS;

/// Series `i`'s metric name.
pub fn metric_name(i: u64) -> &'static str {
    METRIC_NAMES[(i % METRIC_NAMES.len() as u64) as usize]
}

/// Series `i`'s labels, sorted by name: `__name__`, `cpu`, `instance`, `job`.
pub fn node_series(i: u64) -> [(&'static str, String); 4] {
    [
        ("__name__", metric_name(i).to_string()),
        ("cpu", ((i / METRIC_NAMES.len() as u64) % CPUS).to_string()),
        ("instance", format!("host-{}:9100", i / SERIES_PER_INSTANCE)),
        ("job", "node".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_distinct_within_a_host_and_across_hosts() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..2 * SERIES_PER_INSTANCE {
            assert!(seen.insert(node_series(i)), "series {i} repeats");
        }
        assert_eq!(node_series(1000)[2].1, "host-1:9100");
    }
}
