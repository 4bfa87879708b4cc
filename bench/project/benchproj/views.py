from django.http import HttpResponse


def hello(request):
    """W4: a plain synchronous Django view."""
    return HttpResponse("Hello, world!", content_type="text/plain")
