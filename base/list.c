/* list.c - intrusive circular doubly linked list. */
#include "list.h"

void list_init(struct list_node *n)
{
    n->prev = n->next = n;
}

static void link_between(struct list_node *n, struct list_node *prev, struct list_node *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

void list_push_front(struct list_node *head, struct list_node *n)
{
    link_between(n, head, head->next);
}

void list_push_back(struct list_node *head, struct list_node *n)
{
    link_between(n, head->prev, head);
}

void list_unlink(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

int list_empty(const struct list_node *head)
{
    return head->next == head;
}

struct list_node *list_first(const struct list_node *head)
{
    return head->next == head ? NULL : head->next;
}
