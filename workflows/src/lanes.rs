//! Bounded concurrency inside workflow code: `lanes` loops each take the next item from one
//! queue until it is empty. The SDK's `join_all` drives the lanes; `futures`' own
//! combinators (FuturesUnordered, buffer_unordered) wake through wakers the SDK takes for
//! nondeterminism and must not be used in workflows.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;

/// Runs `work` on every item, at most `lanes` at once, and returns the outputs in the
/// items' order.
pub(crate) async fn in_lanes<T, O, F, Fut>(items: Vec<T>, lanes: usize, work: F) -> Vec<O>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = O>,
{
    let lanes = lanes.clamp(1, items.len().max(1));
    let queue = RefCell::new(items.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = RefCell::new(Vec::new());
    let lane = || async {
        loop {
            let next = queue.borrow_mut().pop_front();
            let Some((index, item)) = next else {
                break;
            };
            let output = work(item).await;
            done.borrow_mut().push((index, output));
        }
    };
    temporalio_workflow::join_all((0..lanes).map(|_| lane())).await;
    let mut done = done.into_inner();
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, output)| output).collect()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn no_more_than_the_lanes_run_at_once_and_outputs_keep_their_order() {
        let running = Cell::new(0);
        let most = Cell::new(0);
        let outputs = futures::executor::block_on(in_lanes((1..=10).collect(), 3, |i: u32| {
            let (running, most) = (&running, &most);
            async move {
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                // Yield (waking ourselves) so other lanes get to start.
                let mut yielded = false;
                futures::future::poll_fn(|cx| {
                    if yielded {
                        std::task::Poll::Ready(())
                    } else {
                        yielded = true;
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
                running.set(running.get() - 1);
                i * 10
            }
        }));
        assert_eq!(outputs, (1..=10).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(most.get(), 3);
    }
}
