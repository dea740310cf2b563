//! Certificates and keys for one environment, generated fresh each start (ECDSA P-256).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{IoContext, Result};
use crate::util::random_hex;

/// User of the client certificate in the admin kubeconfig.
pub const ADMIN_USER: &str = "gitops-testenv-admin";
/// User of the static bearer token.
pub const TOKEN_USER: &str = "gitops-testenv-token-admin";

/// Paths of the generated files (all inside the environment's directory, mode 0700).
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The static admin token (kept in `tokens.csv`, never printed).
    pub fn token(&self) -> Result<String> {
        let path = self.path("tokens.csv");
        let csv =
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
        Ok(csv.split(',').next().unwrap_or_default().to_owned())
    }
}

/// Generates the CA, serving and client certificates, the service-account signing key and the
/// static token file under `dir`.
pub(crate) fn generate(dir: &Path, service_ip: IpAddr) -> Result<Pki> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let pki = Pki {
        dir: dir.to_owned(),
    };
    let write = |file: &str, contents: String| {
        let path = pki.path(file);
        std::fs::write(&path, contents).context(|| format!("writing {}", path.display()))
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gitops-testenv-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    write("ca.crt", ca.pem())?;
    // kube-controller-manager signs CertificateSigningRequests with it.
    write("ca.key", ca.key().serialize_pem())?;

    let serving_names = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
        service_ip.to_string(),
        // Where it listens when the environment has a node.
        crate::node::NODE_IP.to_string(),
    ];
    let (cert, key) = leaf(
        &ca,
        "kube-apiserver",
        None,
        serving_names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write("apiserver.crt", cert)?;
    write("apiserver.key", key)?;

    let (cert, key) = leaf(
        &ca,
        ADMIN_USER,
        Some("system:masters"),
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    write("admin.crt", cert)?;
    write("admin.key", key)?;

    let node_user = format!("system:node:{}", crate::node::NODE_NAME);
    for (file, user, group) in [
        (
            "kube-controller-manager",
            "system:kube-controller-manager",
            None,
        ),
        // The node's components (see `node`), as the default RBAC and the Node authorizer
        // expect them.
        ("kubelet-client", node_user.as_str(), Some("system:nodes")),
        ("kube-proxy", "system:kube-proxy", None),
        ("kube-scheduler", "system:kube-scheduler", None),
    ] {
        let (cert, key) = leaf(
            &ca,
            user,
            group,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        write(&format!("{file}.crt"), cert)?;
        write(&format!("{file}.key"), key)?;
    }
    let (cert, key) = leaf(
        &ca,
        crate::node::NODE_NAME,
        None,
        vec![crate::node::NODE_IP.to_string()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write("kubelet.crt", cert)?;
    write("kubelet.key", key)?;

    let service_accounts = KeyPair::generate()?;
    write("service-accounts.key", service_accounts.serialize_pem())?;
    write("service-accounts.pub", service_accounts.public_key_pem())?;

    write(
        "tokens.csv",
        format!(
            "{},{TOKEN_USER},{TOKEN_USER},system:masters\n",
            random_hex(24)?
        ),
    )?;
    Ok(pki)
}

/// A certificate signed by the CA; returns (certificate PEM, key PEM).
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    common_name: &str,
    organization: Option<&str>,
    subject_alt_names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(subject_alt_names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}
