/* test_group.c - groups, memberships, handles and send queues. */
#include "check.h"
#include "group.h"

static void test_membership(void)
{
    mt_conns_t conns = {0};
    mt_groups_t gs = {0};
    mt_conn_t *c[5];
    for (int i = 0; i < 5; i++)
        c[i] = mt_conn_new(&conns);

    CHECK(mt_groups_add(&gs, "room", 4, c[0]) == MT_GROUP_CREATED);
    for (int i = 1; i < 5; i++)
        CHECK(mt_groups_add(&gs, "room", 4, c[i]) == 0);
    CHECK(mt_groups_add(&gs, "room", 4, c[2]) == 0); /* already in: no change */
    mt_group_t *g = mt_groups_find(&gs, "room", 4);
    CHECK(g && g->n == 5);
    CHECK(mt_groups_add(&gs, "other", 5, c[2]) == MT_GROUP_CREATED);

    /* Swap-remove keeps every member's recorded index right. */
    CHECK(mt_groups_discard(&gs, "room", 4, c[0]) == 0);
    CHECK(mt_groups_discard(&gs, "room", 4, c[0]) == -1);
    for (uint32_t i = 0; i < g->n; i++) {
        mt_conn_t *m = g->members[i];
        int found = 0;
        for (int k = 0; k < m->ngroups; k++)
            found |= m->groups[k].group == g && m->groups[k].index == i;
        CHECK(found);
    }
    CHECK(g->n == 4);

    int emptied = 0;
    mt_groups_discard_all(&gs, c[2], NULL, NULL);
    CHECK(mt_groups_find(&gs, "other", 5) == NULL);
    CHECK(g->n == 3 && c[2]->ngroups == 0);
    for (int i = 1; i < 5; i++)
        if (i != 2)
            emptied += mt_groups_discard(&gs, "room", 4, c[i]) == MT_GROUP_REMOVED;
    CHECK(emptied == 1 && gs.count == 0);

    /* Stale handles do not resolve. */
    uint64_t id = c[3]->id;
    CHECK(mt_conn_get(&conns, id) == c[3]);
    mt_conn_free(&conns, c[3]);
    CHECK(mt_conn_get(&conns, id) == NULL);
    mt_conn_t *again = mt_conn_new(&conns);
    CHECK(again->id != id && mt_conn_get(&conns, id) == NULL);
    CHECK(again->id < (1ULL << 53));
    for (int i = 0; i < 5; i++)
        if (i != 3)
            mt_conn_free(&conns, c[i]);
    mt_conn_free(&conns, again);
    CHECK(mt_conns_count(&conns) == 0);
    mt_conns_free(&conns);
    mt_groups_free(&gs);
}

static void test_sendq(void)
{
    mt_sendq_t q = {0};
    mt_frame_t *shared = mt_frame_new("hello", 5, 0);
    for (int i = 0; i < 10; i++) {
        mt_sendq_push(&q, shared);
        if (i % 3 == 0)
            mt_sendq_pop(&q); /* wrap the ring around */
    }
    CHECK(shared->refs == 1 + q.len);
    CHECK(q.bytes == 5 * q.len);
    CHECK(memcmp(mt_frame_payload(mt_sendq_peek(&q)), "hello", 5) == 0);
    mt_sendq_clear(&q);
    CHECK(shared->refs == 1 && q.bytes == 0);
    mt_frame_unref(shared);
}

int main(void)
{
    test_membership();
    test_sendq();
    return CHECK_DONE();
}
