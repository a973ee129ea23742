-- Leadership fencing (issue 5). The leader takes a fencing number (epoch) at each acquisition;
-- writes that only the leader may do go through `Store::fenced_write(epoch)`, which raises
-- `leader_fence.epoch` to the caller's epoch and refuses the write when a newer leader has
-- already raised it further. One row, created here.
CREATE TABLE leader_fence (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO leader_fence (id, epoch) VALUES (1, 0);

-- One row per leadership term, written when the term starts and closed when it ends.
-- `released_at_ms` stays NULL when the holder died without releasing: its term then ended
-- no later than its last renewal plus the lease (and before the next epoch's start).
CREATE TABLE leader_terms (
    epoch BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    released_at_ms BIGINT
);
