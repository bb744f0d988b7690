use std::sync::mpsc::{Sender, channel};

/// Drops finished instances on a thread of its own: returning an instance
/// to the pool resets its memory, which is work a response need not wait for.
#[derive(Clone)]
pub struct Reaper {
    tx: Sender<Box<dyn Send>>,
}

impl Reaper {
    pub fn start() -> Reaper {
        let (tx, rx) = channel::<Box<dyn Send>>();
        std::thread::Builder::new()
            .name("atoll-reaper".into())
            .spawn(move || {
                for item in rx {
                    drop(item);
                }
            })
            .expect("spawning the reaper thread");
        Reaper { tx }
    }

    pub fn defer(&self, item: impl Send + 'static) {
        // If the thread is gone (shutdown), dropping here is still correct.
        let _ = self.tx.send(Box::new(item));
    }
}
