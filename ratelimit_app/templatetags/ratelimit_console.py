"""Template tags of the operators' console: the admin index's dashboard."""

from django import template

from ratelimit_app.console_views import dashboard

register = template.Library()


@register.inclusion_tag("ratelimit_app/admin/dashboard.html", takes_context=True)
def ratelimit_dashboard(context):
    """The dashboard for the request being rendered."""
    return dashboard(context["request"])
