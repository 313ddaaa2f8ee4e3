from django.contrib import admin

from crm.models import Company, Contact


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["first_name", "last_name", "email", "phone", "company"]
    search_fields = ["first_name", "last_name", "email"]
    list_select_related = ["company"]
