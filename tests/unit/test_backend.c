/*
 * backend_check_batch: the one validation every backend's forward starts with.
 */
#include "test.h"

#include "../../src/backend/backend.h"

TEST(backend_check_batch_names_what_is_wrong) {
    Config c = {0};
    c.vocab_size = 100;
    Backend be = {0};
    be.config = &c;
    be.opt = (BackendOptions){.max_batch = 4, .n_slots = 2, .n_pages = 3, .page_size = 16};
    int32_t table[2 * 2] = {0, 1, 2, 0}; /* slot 0: pages 0, 1; slot 1: pages 2, 0 */
    KVPages kv = {table, 2};
    int32_t tok[2] = {5, 6}, pos[2] = {0, 17}, seq[2] = {0, 1};
    uint8_t want[2] = {1, 1};
    Batch b = {2, tok, pos, seq, want, NULL};
    char err[128];
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), 0);

    b.n = 5;
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "batch of 5 entries: expected 1..4");
    b.n = 2;
    tok[1] = 100;
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "token id 100: expected 0..99");
    tok[1] = 6, seq[1] = 2;
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "sequence slot 2: expected 0..1");
    seq[1] = 1, pos[1] = 32;
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "position 32: expected 0..31");
    pos[1] = 17, table[3] = 7;
    ASSERT_EQ_INT(backend_check_batch(&be, &b, &kv, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "slot 1 position 16: page 7 not in 0..2");
}
