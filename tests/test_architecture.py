"""The app's import graph: no cycles between any two of its modules.

``make lint`` checks the layers of DESIGN.md with import-linter; this test also fails
on a cycle through a package's ``__init__``, which sibling checks do not see.
"""

import grimp


def strongly_connected_components(graph, modules):
    """Tarjan's algorithm over ``graph``'s direct imports among ``modules``."""
    index, lowlink, on_stack, stack, components = {}, {}, set(), [], []

    def visit(module):
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                lowlink[module] = min(lowlink[module], lowlink[imported])
            elif imported in on_stack:
                lowlink[module] = min(lowlink[module], index[imported])
        if lowlink[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            components.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return components


def test_the_strongly_connected_components_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.c", imported="a.d")
    components = strongly_connected_components(graph, {"a", "a.b", "a.c", "a.d"})
    assert {"a.b", "a.c"} in components
    assert {"a.d"} in components


def test_no_module_of_the_app_imports_itself_back():
    graph = grimp.build_graph("ratelimit_app", cache_dir=None)
    modules = graph.find_descendants("ratelimit_app") | {"ratelimit_app"}
    cycles = [sorted(c) for c in strongly_connected_components(graph, modules) if len(c) > 1]
    assert cycles == []
