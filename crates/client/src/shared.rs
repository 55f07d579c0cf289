//! [`Shared`]: the state the connection task, the handles and the REST client share.

use crate::Credentials;
use crate::endpoint::Endpoint;
use crate::mirror::Books;
use parking_lot::RwLock;

/// State shared by the connection task, the handles and the REST client.
#[derive(Debug)]
pub(crate) struct Shared {
    pub credentials: RwLock<Credentials>,
    pub books: Books,
    /// The gateway of the current (or last) connection: REST calls go there.
    pub endpoint: RwLock<Endpoint>,
}
