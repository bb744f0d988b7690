//! What one function holds of `http`, and the app-wide parts it is cut
//! from: the outbound auth rules (`[[http_auth]]`, rendered from variables
//! at load) and the runtime configuration's `[http]` limits.

use super::{AuthRule, OutboundHttp};
use crate::capability::{BuildContext, HostCapability};
use crate::{HostCallError, Invocation};
use atoll_manifest::{Capability, Function, HttpSettings, ManifestError};
use http::{HeaderName, HeaderValue};

/// The app's outbound HTTP settings.
pub struct Http {
    auth: Vec<AuthRule>,
    settings: HttpSettings,
}

/// A function's outbound client, checking its `allowed_hosts`.
#[derive(Clone, Default)]
pub struct HttpGrant(pub Option<OutboundHttp>);

impl HttpGrant {
    pub fn client(&self) -> Option<&OutboundHttp> {
        self.0.as_ref()
    }
}

impl std::fmt::Debug for HttpGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "client" } else { "none" })
    }
}

impl HostCapability for Http {
    const KIND: Capability = Capability::Http;
    type Grant = HttpGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Http, Vec<ManifestError>> {
        let manifest = ctx.manifest;
        let mut errors = Vec::new();
        let mut auth = Vec::new();
        for (i, rule) in manifest.http_auth.iter().enumerate() {
            let mut headers = Vec::new();
            for (name, template) in &rule.headers {
                let key = format!("http_auth[{i}].headers.{name}");
                let rendered = template.render(|n| ctx.vars.get(n).flatten().map(|v| v.expose().to_string()));
                let value = rendered.and_then(|v| {
                    HeaderValue::try_from(v).map_err(|_| "the rendered value is not a valid header value".to_string())
                });
                match (HeaderName::try_from(name.as_str()), value) {
                    (Ok(n), Ok(mut v)) => {
                        v.set_sensitive(true);
                        headers.push((n, v));
                    }
                    (_, Err(e)) => errors.push(manifest.source.error(rule.loc, key, e)),
                    (Err(e), _) => errors.push(manifest.source.error(rule.loc, key, e.to_string())),
                }
            }
            auth.push(AuthRule {
                hosts: rule.hosts.clone(),
                headers,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Http {
            auth,
            settings: ctx.runtime.http.clone(),
        })
    }

    fn grant(&self, f: &Function) -> Result<HttpGrant, String> {
        OutboundHttp::new(f.allowed_hosts.clone(), self.auth.clone(), self.settings.clone()).map(|c| HttpGrant(Some(c)))
    }

    async fn call(
        inv: &Invocation,
        grant: &HttpGrant,
        _: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        super::host::call(inv, grant, op, payload).await
    }
}
