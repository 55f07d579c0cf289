//! Tests only: a TCP forwarder to a real Redis that a test can cut, as a network partition
//! would (every forwarded connection closed, new ones refused), so failure paths are tested
//! against real connection errors, not a mock.

use tokio::net::{TcpListener, TcpStream};

pub(crate) struct Link {
    pub(crate) url: String,
    tasks: tokio::task::JoinSet<()>,
}

impl Link {
    /// A forwarder to the Redis of `url` (`redis://host:port[/db]`).
    pub(crate) async fn to(url: &str) -> Self {
        let target = url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            url: format!("redis://{addr}"),
            tasks,
        }
    }

    /// Closes the listener and every forwarded connection.
    pub(crate) fn cut(&mut self) {
        self.tasks.abort_all();
    }
}
