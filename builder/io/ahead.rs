//! Work on every core, results in order: the items of an iterator made on one thread,
//! mapped on others, and handed to the calling thread in their original order. Walking
//! a tree (a `stat` or an `open` per entry) and filing its entries into a map then take
//! about the longest of the three, not their sum.

use std::collections::BTreeMap;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

/// Items handed over at a time: one channel message per item would cost more than
/// most items do.
pub const BATCH: usize = 256;
/// Batches in each channel, so memory stays small whatever the count.
const AHEAD: usize = 8;

/// Calls `consume` with `map` of every item of `items`, in the order of `items`. The
/// iterator runs on one thread and `map` on as many as there are cores, while `consume`
/// runs on the caller's. The first error from `consume` stops them all.
pub fn map_in_order<T, U, E>(
    items: impl Iterator<Item = T> + Send,
    map: impl Fn(T) -> U + Sync,
    consume: impl FnMut(U) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
    U: Send,
{
    map_in_batches(BATCH, items, map, consume)
}

/// [`map_in_order`] with `batch` items a message: smaller batches keep less in flight
/// when a mapped item holds data (at most `2 * AHEAD + cores` batches are).
pub fn map_in_batches<T, U, E>(
    batch_size: usize,
    items: impl Iterator<Item = T> + Send,
    map: impl Fn(T) -> U + Sync,
    mut consume: impl FnMut(U) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
    U: Send,
{
    let mappers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let (work_tx, work_rx) = sync_channel::<(usize, Vec<T>)>(AHEAD);
        let (done_tx, done_rx) = sync_channel::<(usize, Vec<U>)>(AHEAD);
        s.spawn(move || {
            let mut batch = Vec::with_capacity(batch_size);
            let mut seq = 0;
            for item in items {
                batch.push(item);
                if batch.len() == batch_size {
                    // The mappers stopped (the consumer failed): stop making items.
                    if work_tx
                        .send((seq, std::mem::replace(&mut batch, Vec::with_capacity(batch_size))))
                        .is_err()
                    {
                        return;
                    }
                    seq += 1;
                }
            }
            let _ = work_tx.send((seq, batch));
        });
        // Shared by the mappers, and dropped with the last of them, so a stopped
        // consumer stops the producer too.
        let work = Arc::new(Mutex::new(work_rx));
        for _ in 0..mappers {
            let (work, done_tx, map) = (Arc::clone(&work), done_tx.clone(), &map);
            s.spawn(move || loop {
                let next = work.lock().expect("a mapper panicked").recv();
                let Ok((seq, batch)) = next else { return };
                if done_tx.send((seq, batch.into_iter().map(map).collect())).is_err() {
                    return;
                }
            });
        }
        drop((work, done_tx));
        // Batches arrive in any order; each is consumed once those before it have been.
        let mut early = BTreeMap::new();
        let mut want = 0;
        for (seq, batch) in done_rx {
            early.insert(seq, batch);
            while let Some(batch) = early.remove(&want) {
                want += 1;
                for item in batch {
                    consume(item)?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_stops_at_the_first_error() {
        let mut seen = Vec::new();
        super::map_in_order(
            0..10_000u64,
            |i| i * 2,
            |i| {
                seen.push(i);
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());

        let mut count = 0;
        let r = super::map_in_order(
            0..,
            |i| i,
            |i| {
                count += 1;
                if i == 1000 {
                    Err(i)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((r, count), (Err(1000), 1001));
    }
}
