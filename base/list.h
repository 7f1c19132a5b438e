/* list.h - an intrusive, circular doubly linked list (the Linux kernel's shape).
 *
 * A struct that goes on a list embeds a struct list_node; the list itself is a struct
 * list_node head. An empty head and an unlinked node point to themselves, so unlinking a
 * node twice, or one that was never linked (after list_init), is harmless.
 *
 * Ownership: the list owns nothing; the caller allocates and frees the structs that embed
 * nodes, and unlinks a node before freeing it. */
#ifndef BRIEFD_LIST_H
#define BRIEFD_LIST_H

#include <stddef.h>

struct list_node {
    struct list_node *prev, *next;
};

/* The struct of type `type` whose member `member` is the node ptr. */
#define LIST_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Visit every node of head; it may be unlinked (and freed) inside the loop. */
#define LIST_FOR_EACH_SAFE(it, tmp, head) \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

/* An empty list (or an unlinked node). */
void list_init(struct list_node *n);
/* Insert n at the front / the back of head's list. n must not be on a list. */
void list_push_front(struct list_node *head, struct list_node *n);
void list_push_back(struct list_node *head, struct list_node *n);
/* Take n off its list (n is left self-linked). */
void list_unlink(struct list_node *n);
int list_empty(const struct list_node *head);
/* The first node, or NULL when empty. */
struct list_node *list_first(const struct list_node *head);

#endif
