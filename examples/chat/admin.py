from django.contrib import admin

from .models import ChatMessage, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "created"]
    search_fields = ["name"]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ["author", "room", "text", "sent"]
    list_filter = ["room", "authenticated"]
    search_fields = ["author", "text"]
