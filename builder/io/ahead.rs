//! Work on the second core: the items of an iterator made on their own thread, a few
//! batches ahead of the thread that consumes them. Walking a tree (a `stat` or an
//! `open` per entry) and filing the entries into a map then take the longer of the
//! two, not their sum.

use std::sync::mpsc::sync_channel;

/// Items handed over at a time: one channel message per item would cost more than
/// most items do.
const BATCH: usize = 256;
/// Batches made ahead of the consumer, so memory stays small whatever the count.
const AHEAD: usize = 8;

/// Calls `consume` with every item of `items`, in order, while `items` runs on another
/// thread. The first error from `consume` stops both.
pub fn for_each<T, E>(
    items: impl Iterator<Item = T> + Send,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
{
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<T>>(AHEAD);
        s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            for item in items {
                batch.push(item);
                if batch.len() == BATCH {
                    // The consumer stopped (an error): stop making items.
                    if tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(batch);
        });
        for batch in rx {
            for item in batch {
                consume(item)?;
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
        super::for_each(0..10_000, |i| {
            seen.push(i);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());

        let mut count = 0;
        let r = super::for_each(0.., |i| {
            count += 1;
            if i == 1000 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!((r, count), (Err(1000), 1001));
    }
}
