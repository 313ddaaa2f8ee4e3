"""The tenant CRM models that imports and data migrations work on."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

CURRENCY_MAX_LENGTH = 3  # ISO 4217 alphabetic code


class Company(models.Model):
    name = models.CharField(max_length=255, unique=True)
    website = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    job_title = models.CharField(max_length=150, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    birthday = models.DateField(null=True, blank=True)
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    extra = models.JSONField(
        default=dict, blank=True, help_text="Imported columns that map to no field."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "company",
                condition=~models.Q(email=""),
                nulls_distinct=False,
                name="crm_contact_unique_email_per_company",
            )
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


class Organization(models.Model):
    name = models.CharField(max_length=255)
    currency = models.CharField(max_length=CURRENCY_MAX_LENGTH, blank=True)

    def __str__(self) -> str:
        return self.name


class Employee(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    title = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Vendor(models.Model):
    name = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)

    def __str__(self) -> str:
        return self.name


class Lead(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="leads")
    source = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=50, default="new")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.contact} ({self.status})"


class Deal(models.Model):
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=255)
    stage = models.CharField(max_length=50, default="open")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=CURRENCY_MAX_LENGTH, blank=True)

    def __str__(self) -> str:
        return self.title


class Order(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="orders")
    total = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=CURRENCY_MAX_LENGTH, blank=True)
    placed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.total} {self.currency}".rstrip()


class Payment(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=CURRENCY_MAX_LENGTH, blank=True)
    paid_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Payment {self.pk}: {self.amount} {self.currency}".rstrip()
