//! The part of a core/v1 Service the reconciler reads (its name and port numbers), watched and
//! cached in place of whole Services. A k8s-openapi `Service` carries a spec of some twenty
//! fields (cluster IPs, IP families, policies, per-port names, protocols and target ports) and
//! a status; resolving a ProxyConfig's Service needs only whether it exists and which ports it
//! has.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ServicePorts {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServicePortsSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ServicePortsSpec {
    #[serde(default)]
    pub ports: Vec<PortNumber>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub struct PortNumber {
    pub port: i32,
}

gitops_runtime::partial_resource!(
    ServicePorts,
    group = "",
    version = "v1",
    kind = "Service",
    plural = "services"
);

impl ServicePorts {
    /// The port numbers, in the Service's order.
    pub fn port_numbers(&self) -> Vec<i32> {
        self.spec.ports.iter().map(|p| p.port).collect()
    }

    /// Keeps of the metadata only what identifies the Service to the cache (name, namespace,
    /// uid, resourceVersion): labels and annotations (`kubectl apply` keeps a whole copy of the
    /// manifest in one) are never read.
    pub fn trim_for_cache(&mut self) {
        let metadata = std::mem::take(&mut self.metadata);
        self.metadata = ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            uid: metadata.uid,
            resource_version: metadata.resource_version,
            ..ObjectMeta::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_port_numbers_of_a_whole_service_and_caches_its_identity_only() {
        let mut service: ServicePorts = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "grafana", "namespace": "monitoring", "uid": "u1", "resourceVersion": "42",
                "labels": {"app": "grafana"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\":\"manifest\"}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "type": "ClusterIP", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "selector": {"app": "grafana"},
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 3000},
                    {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": "metrics"}
                ]
            },
            "status": {"loadBalancer": {}}
        }))
        .expect("a Service parses");
        assert_eq!(service.port_numbers(), vec![80, 9090]);
        service.trim_for_cache();
        assert_eq!(service.metadata.name.as_deref(), Some("grafana"));
        assert_eq!(service.metadata.namespace.as_deref(), Some("monitoring"));
        assert_eq!(service.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(service.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(service.metadata.labels, None);
        assert_eq!(service.metadata.annotations, None);
        assert_eq!(service.metadata.managed_fields, None);
    }

    #[test]
    fn a_service_without_ports_has_none() {
        let service: ServicePorts = serde_json::from_value(json!({
            "metadata": {"name": "headless", "namespace": "apps"},
            "spec": {"clusterIP": "None"}
        }))
        .expect("a Service parses");
        assert!(service.port_numbers().is_empty());
        assert_eq!(<ServicePorts as kube::Resource>::kind(&()), "Service");
        assert_eq!(<ServicePorts as kube::Resource>::api_version(&()), "v1");
        assert_eq!(
            gitops_runtime::watches::resource_name::<ServicePorts>(),
            "services/v1"
        );
    }
}
