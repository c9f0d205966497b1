"""factory-boy factories for the policy models."""

import datetime

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from ratelimit_app import hashing
from ratelimit_app.models import (
    ApiKey,
    BanRule,
    CredentialBan,
    EndpointGroup,
    Limit,
    Tenant,
    Tier,
)


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tier{n}")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    tier = factory.SubFactory(TierFactory)


class EndpointGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EndpointGroup
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"group{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class LimitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Limit

    group = factory.SubFactory(EndpointGroupFactory)
    tier = factory.SubFactory(TierFactory)
    scope = "tenant"
    algorithm = "gcra"
    rate = 60
    period = 60
    burst = 10


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Builds a key with a known secret, available as ``key.secret`` after creation."""

    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = "test key"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        prefix, secret = hashing.new_api_key()
        key = model_class.objects.create(
            *args, prefix=prefix, hashed_secret=hashing.hash_api_key(secret), **kwargs
        )
        key.secret = secret
        return key


class BanRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BanRule

    name = factory.Sequence(lambda n: f"rule {n}")
    path = "/connect/token"


class CredentialBanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CredentialBan

    rule = factory.SubFactory(BanRuleFactory)
    client_id = factory.Sequence(lambda n: f"client-{n}")
    fingerprint = factory.Sequence(lambda n: hashing.keyed_hash("test", str(n)))
    failures = 5
    banned_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.banned_at + datetime.timedelta(seconds=600))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")
    is_staff = True
