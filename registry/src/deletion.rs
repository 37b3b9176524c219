//! Deleting a manifest, for `regstat cleanup apply`: `DELETE /v2/<name>/manifests/<digest>`.
//!
//! Distribution 2.8 deletes manifests by digest only (a tag cannot be deleted on its own), and
//! only with `storage.delete.enabled`; the blobs are freed later by the registry's garbage
//! collection, never by this call.

use crate::client::RegistryClient;
use crate::digest;
use crate::error::FetchError;
use reqwest::Method;

impl RegistryClient {
    /// Deletes the manifest `digest` of `repository`, sending `user_agent` (the registry's
    /// delete event carries it into the deletion audit trail; it must not be regstat's
    /// callbacks' `regstat/<version>`, whose requests the model ignores). `Ok(false)` when the
    /// registry no longer has it (404); a registry that refuses deletes (405, or 401/403 for
    /// regstat's credentials) is [`FetchError::Denied`].
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &str,
        user_agent: &str,
    ) -> Result<bool, FetchError> {
        digest::check_repository(repository).map_err(FetchError::Invalid)?;
        digest::fetchable(digest).map_err(FetchError::Invalid)?;
        let url = self
            .transport
            .url(&format!("v2/{repository}/manifests/{digest}"))?;
        let what = format!("delete of {}/{repository}@{digest}", self.name());
        let scope = format!("repository:{repository}:delete");
        let _permit = self.transport.permit().await?;
        match self
            .transport
            .send_as(Method::DELETE, url, None, &scope, &what, Some(user_agent))
            .await
        {
            Ok(_) => Ok(true),
            Err(FetchError::Gone) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
