"""The topic exchange: binding keys are word patterns matched against the routing key.

Words are split on '.'; in a binding key ``*`` matches exactly one word and ``#`` zero or
more.  Edge cases follow RabbitMQ's rabbit_exchange_type_topic / rabbit_db_topic_exchange:

- the empty key is zero words (not one empty word): binding "" matches only routing key
  "", "#" matches "" but "*" does not;
- empty words are words: "a..b" is three words, "a." is two, so "a.*" matches "a.";
- ``*`` and ``#`` in a routing key are ordinary words (RabbitMQ also tries them as
  literal edges, which only ever finds a subset of what the wildcard edge finds).

Bindings live in a trie with one edge per word, wildcard edges kept apart from literal
ones, so a lookup touches only the branches a routing key can reach: the cost follows
the number of matching patterns and the key's length, not the number of bindings.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import Any

from .base import NO_DESTINATIONS, BindingKey, DestinationSet, Exchange

# Publishers reuse a small set of routing keys, and a trie walk in Python costs micro-
# seconds, so results are cached per routing key until the next binding change.  Bounded
# so that unique-per-message keys cannot grow memory; when full it is simply cleared.
_CACHE_SIZE = 4096
# Unions bigger than this are not cached: delivering to that many destinations costs far
# more than recomputing the union, and caching many such sets would pin a lot of memory.
_CACHE_MAX_UNION = 64


def split_words(key: str) -> list[str]:
    """RabbitMQ's split: the empty key has no words at all."""
    return key.split(".") if key else []


class _Node:
    __slots__ = ("destinations", "hash", "star", "words")

    def __init__(self) -> None:
        self.words: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        # Bindings whose key ends here; None for the (many) inner nodes.
        self.destinations: DestinationSet | None = None

    def is_empty(self) -> bool:
        return (
            self.destinations is None and not self.words and self.star is None and self.hash is None
        )


def _pattern(binding_key: str) -> list[str]:
    # "#.#" matches exactly what "#" matches; collapsing runs of '#' keeps the trie
    # smaller and spares the matcher redundant zero-or-more expansions.
    words: list[str] = []
    for word in split_words(binding_key):
        if word == "#" and words and words[-1] == "#":
            continue
        words.append(word)
    return words


class TopicExchange(Exchange):
    __slots__ = ("_cache", "_root")

    type_name = "topic"

    def _init_routing(self) -> None:
        self._root = _Node()
        self._cache: dict[str, Collection[Hashable]] = {}

    def route(
        self, routing_key: str, headers: Mapping[str, Any] | None = None
    ) -> Collection[Hashable]:
        # Hot path: a repeated key costs one dict lookup.
        cached = self._cache.get(routing_key)
        if cached is not None:
            return cached
        result, shared = self._match(split_words(routing_key))
        if shared or len(result) <= _CACHE_MAX_UNION:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[routing_key] = result
        return result

    def _match(self, words: list[str]) -> tuple[Collection[Hashable], bool]:
        """Walk the trie; returns (destinations, whether the result is a shared snapshot).

        Iterative over (node, position) states, so long keys cannot hit the recursion
        limit.  A '#' node is entered once for every position it may resume at; ``lowest``
        remembers the lowest position each '#' node was entered from, so a pattern like
        "#.a.#.a.#" meets every state once instead of exploding combinatorially (an
        unbounded walk would let one binding stall the broker).  Only the (node, position)
        states reachable from the key are visited, whatever the number of bindings.
        """
        end = len(words)
        found: list[DestinationSet] | None = None
        lowest: dict[_Node, int] | None = None
        stack = [(self._root, 0)]
        while stack:
            node, pos = stack.pop()
            hash_node = node.hash
            if hash_node is not None:
                # '#' swallows words[pos:resume] for every resume position pos..end.
                if lowest is None:
                    lowest = {}
                upto = lowest.get(hash_node, end + 1)
                if pos < upto:
                    lowest[hash_node] = pos
                    for resume in range(pos, upto):
                        stack.append((hash_node, resume))
            if pos == end:
                if node.destinations is not None:
                    if found is None:
                        found = [node.destinations]
                    else:
                        found.append(node.destinations)
                continue
            child = node.words.get(words[pos])
            if child is not None:
                stack.append((child, pos + 1))
            if node.star is not None:
                stack.append((node.star, pos + 1))
        if found is None:
            return NO_DESTINATIONS, True
        if len(found) == 1:
            return found[0].snapshot(), True
        return frozenset().union(*(entry.destinations() for entry in found)), False

    def _add(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        destination, binding_key, _ = key
        node = self._root
        for word in _pattern(binding_key):
            if word == "#":
                if node.hash is None:
                    node.hash = _Node()
                node = node.hash
            elif word == "*":
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                child = node.words.get(word)
                if child is None:
                    child = node.words[word] = _Node()
                node = child
        if node.destinations is None:
            node.destinations = DestinationSet()
        node.destinations.add(destination)
        self._cache.clear()

    def _remove(self, key: BindingKey, arguments: dict[str, Any]) -> None:
        destination, binding_key, _ = key
        path: list[tuple[_Node, str]] = []  # (parent, word leading out of it)
        node = self._root
        for word in _pattern(binding_key):
            path.append((node, word))
            child = node.hash if word == "#" else node.star if word == "*" else node.words[word]
            assert child is not None, "bindings and trie out of step"
            node = child
        assert node.destinations is not None, "bindings and trie out of step"
        node.destinations.remove(destination)
        if not node.destinations:
            node.destinations = None
        # Prune the branch bottom-up while it is empty, so unbinding leaves no garbage.
        while path and node.is_empty():
            parent, word = path.pop()
            if word == "#":
                parent.hash = None
            elif word == "*":
                parent.star = None
            else:
                del parent.words[word]
            node = parent
        self._cache.clear()

    def node_count(self) -> int:
        """Trie nodes, root included (lets tests check that unbinding prunes)."""
        count, stack = 0, [self._root]
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.words.values())
            stack.extend(child for child in (node.star, node.hash) if child is not None)
        return count
